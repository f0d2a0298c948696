//! For `config check --user` only, never a login (its reply must not tell an unknown user
//! from a wrong password): why the directory gave no single entry for a name. "Not found
//! (or not unique)" left the admin to guess between a name matching nothing, several
//! entries, an account `enabled_filter` leaves out, a filter on an attribute the schema
//! lacks (a filter written for another directory) and a service account that sees no
//! entries at all.

use ldap3::Scope;

use super::ldap::LdapAuth;
use super::AuthError;

/// The most entries a diagnostic search asks for: enough to name a few.
const SHOWN: i32 = 5;

impl LdapAuth {
    /// Why the lookup of `user` found no entry it could use, as a sentence.
    pub async fn why_not_found(&self, user: &str) -> Result<String, AuthError> {
        let base = &self.settings.base_dn;
        let filter = self.login_filter(user);
        let (dns, more) = self.matching(&filter, user).await?;
        if dns.len() > 1 || more {
            return Ok(format!(
                "the user filter matched several entries under base_dn {base:?} ({}): a name \
                 must match one entry, and logins refuse it as an unknown user; make \
                 [ldap] user_filter (or base_dn) pick one",
                shown(&dns, more)
            ));
        }
        if let [(dn, names)] = dns.as_slice() {
            // Found, but the lookup took it for another name's (`name_not_in_entry`).
            return Ok(match names {
                Some(names) => format!(
                    "{dn} matches the user filter, but none of its names ({names}) is \
                     {user:?} as radmfa compares names (the directory matched it by its \
                     own rules): logins refuse it as an unknown user; log in with the name \
                     as the directory has it"
                ),
                None => format!("{dn} matches the user filter now; try again"),
            });
        }
        if self.settings.enabled_filter.is_some() {
            let (dns, more) = self.matching(&self.name_filter(user), user).await?;
            if let [(dn, _)] = dns.as_slice() {
                return Ok(format!(
                    "{dn} is left out by [ldap] enabled_filter (a disabled, locked or expired \
                     account): every login refused, audited as an unknown user"
                ));
            }
            if !dns.is_empty() {
                return Ok(format!(
                    "every entry the user filter matches ({}) is left out by [ldap] \
                     enabled_filter",
                    shown(&dns, more)
                ));
            }
        }
        let mut why = format!(
            "not found: no entry under base_dn {base:?} matches {}",
            self.name_filter(user)
        );
        for hint in self.nothing_found_hints(user).await {
            why.push_str("; ");
            why.push_str(&hint);
        }
        Ok(why)
    }

    /// The DNs (and, where the entry lacks the name as such, its names) `filter` finds
    /// under base_dn, and whether there were more than are shown.
    async fn matching(
        &self,
        filter: &str,
        user: &str,
    ) -> Result<(Vec<(String, Option<String>)>, bool), AuthError> {
        let attrs = if self.name_attrs.is_empty() {
            vec!["1.1".to_string()]
        } else {
            self.name_attrs.clone()
        };
        let (entries, res) = self
            .search(
                &self.settings.base_dn,
                Scope::Subtree,
                filter,
                &attrs,
                SHOWN,
                user,
            )
            .await?;
        // 4: sizeLimitExceeded, ours or a lower one of the server's.
        if res.rc != 0 && res.rc != 4 {
            return Err(AuthError::Ldap(format!("search: {res}")));
        }
        // Read as a login reads them (`ldap_entry::read`): ldap3's `construct` panics on a
        // malformed entry, and keeps one copy of an attribute listed twice.
        let found = entries
            .into_iter()
            .map(|e| {
                let entry = super::ldap_entry::read(e.0)
                    .map_err(|e| AuthError::Ldap(format!("search: a malformed entry: {e}")))?;
                let names = self.name_not_in_entry(&entry, user);
                Ok((entry.dn, names))
            })
            .collect::<Result<_, AuthError>>()?;
        Ok((found, res.rc == 4))
    }

    /// What may explain a filter that matched nothing, beyond a name the directory does
    /// not have: an attribute the schema lacks, or no entry under base_dn the account may
    /// see. Nothing where the directory could not be asked.
    async fn nothing_found_hints(&self, user: &str) -> Vec<String> {
        let mut hints = Vec::new();
        if let Some(known) = self.schema_attributes(user).await {
            for attr in &self.name_attrs {
                let name = attr.split(';').next().unwrap_or(attr);
                if !known.contains(&name.to_ascii_lowercase()) {
                    hints.push(format!(
                        "the directory's schema has no attribute {name:?}, which [ldap] \
                         user_filter compares the name with (a filter for another kind of \
                         directory? Active Directory names users by sAMAccountName, \
                         OpenLDAP by uid)"
                    ));
                }
            }
        }
        let no_attrs = ["1.1".to_string()];
        let probe = self
            .search(
                &self.settings.base_dn,
                Scope::OneLevel,
                "(objectClass=*)",
                &no_attrs,
                1,
                user,
            )
            .await;
        if let Ok((entries, res)) = probe {
            if res.rc == 0 && entries.is_empty() {
                hints.push(format!(
                    "{} sees no entry at all under base_dn: it may not read them (an ACL), \
                     or base_dn is not where the users are",
                    super::ldap_hints::who(&self.settings)
                ));
            }
        }
        hints
    }

    /// The names (lower-cased) of the attribute types the directory's schema has, read from
    /// its subschema entry; `None` when they cannot be read.
    async fn schema_attributes(&self, user: &str) -> Option<Vec<String>> {
        let subschema = self
            .base_values("", "subschemaSubentry", user)
            .await?
            .first()?
            .clone();
        let types = self.base_values(&subschema, "attributeTypes", user).await?;
        let names: Vec<String> = types.iter().flat_map(|t| type_names(t)).collect();
        (!names.is_empty()).then_some(names)
    }

    /// The values of `attr` on the entry `dn` (a base search); `None` when it cannot be read.
    async fn base_values(&self, dn: &str, attr: &str, user: &str) -> Option<Vec<String>> {
        let (entries, _) = self
            .search(
                dn,
                Scope::Base,
                "(objectClass=*)",
                &[attr.to_string()],
                1,
                user,
            )
            .await
            .ok()?;
        let entry = super::ldap_entry::read(entries.into_iter().next()?.0).ok()?;
        entry
            .attrs
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attr))
            .map(|(_, values)| values)
    }
}

/// `dn1; dn2 (and more)`.
fn shown(found: &[(String, Option<String>)], more: bool) -> String {
    let dns: Vec<&str> = found.iter().map(|(dn, _)| dn.as_str()).collect();
    format!("{}{}", dns.join("; "), if more { "; and more" } else { "" })
}

/// The NAMEs of an RFC 4512 AttributeTypeDescription, lower-cased:
/// `( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )` gives `cn`, `commonname`.
fn type_names(description: &str) -> Vec<String> {
    let Some((_, rest)) = description.split_once(" NAME ") else {
        return Vec::new();
    };
    let rest = rest.trim_start();
    let names = match rest.strip_prefix('(') {
        Some(list) => list.split(')').next().unwrap_or(""),
        None => rest.split_whitespace().next().unwrap_or(""),
    };
    names
        .split_whitespace()
        .map(|n| n.trim_matches('\'').to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::type_names;

    #[test]
    fn attribute_type_names_are_read_from_their_description() {
        assert_eq!(
            type_names("( 2.5.4.3 NAME ( 'cn' 'commonName' ) DESC 'RFC4519' SUP name )"),
            ["cn", "commonname"]
        );
        assert_eq!(
            type_names("( 1.2.840.113556.1.4.221 NAME 'sAMAccountName' SYNTAX '1.3.6.1' )"),
            ["samaccountname"]
        );
        assert!(type_names("( 1.2.3 DESC 'no name' )").is_empty());
    }
}
