//! `[users] strip_domains` (its older place, `[ldap]`, is still read): users type
//! `CORP\alice` or `alice@corp.example.org` where the directory (and so radmfa) knows
//! `alice`. RD Gateway's NPS sends `DOMAIN\user` too. A listed domain is taken off before
//! anything else sees the name; any other domain stays, so `OTHER\alice` is not `alice` (it
//! will not be found, and gets the same reply as any unknown user). Applied to logins and
//! to admin commands alike, so an admin who types `CORP\alice` enrolls the same user who
//! logs in as `alice@corp.example.org`. An upstream RADIUS server gets the name as typed.

use super::ConfigError;
use crate::store::user_key;

#[derive(Debug, Clone, Default)]
pub struct UserNames {
    /// As configured; compared without regard to ASCII case.
    domains: Vec<String>,
    /// Listed in `[ldap]`, the setting's older place (see [`UserNames::in_ldap`]).
    in_ldap: bool,
}

impl UserNames {
    /// Checks the configured domains; `key` names the setting in errors.
    pub fn new(key: &str, domains: Vec<String>) -> Result<Self, ConfigError> {
        for d in &domains {
            let d = d.trim();
            if d.is_empty()
                || d.contains(['\\', '@'])
                || d.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{d:?} is not a domain: give it as users type it, without \\ or @ \
                         (\"CORP\" for CORP\\alice, \"corp.example.org\" for \
                         alice@corp.example.org)"
                    ),
                ));
            }
        }
        Ok(UserNames {
            domains: domains.into_iter().map(|d| d.trim().to_string()).collect(),
            in_ldap: false,
        })
    }

    /// The list as read from `[ldap] strip_domains`, its older place.
    pub(super) fn read_from_ldap(self) -> Self {
        UserNames {
            in_ldap: true,
            ..self
        }
    }

    /// Whether the domains were listed in `[ldap]`, where they are still read: `config
    /// check` and the start warn, naming `[users]` (the list applies to every client, one
    /// whose passwords are checked upstream included).
    pub fn in_ldap(&self) -> bool {
        self.in_ldap
    }

    /// The domains taken off, as configured.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// Whether any domain is listed.
    pub fn strips_domains(&self) -> bool {
        !self.domains.is_empty()
    }

    /// The listed domains that are UPN suffixes (`corp.example.org`), as written: a UPN's
    /// prefix need not be its account's sAMAccountName, while a NetBIOS domain's
    /// `CORP\user` is.
    pub fn upn_suffixes(&self) -> Vec<&str> {
        self.domains
            .iter()
            .map(|d| d.trim())
            .filter(|d| d.contains('.'))
            .collect()
    }

    /// The store key for a name as typed: a listed domain taken off, case and spaces folded.
    pub fn key(&self, typed: &str) -> String {
        let name = typed.trim();
        user_key(self.strip(name).unwrap_or(name))
    }

    fn strip<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.domains.is_empty() {
            return None;
        }
        let listed = |d: &str| self.domains.iter().any(|x| x.eq_ignore_ascii_case(d));
        if let Some((domain, user)) = name.split_once('\\') {
            if listed(domain) && !user.trim().is_empty() {
                return Some(user);
            }
        }
        if let Some((user, domain)) = name.rsplit_once('@') {
            if listed(domain) && !user.trim().is_empty() {
                return Some(user);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(domains: &[&str]) -> UserNames {
        UserNames::new(
            "ldap.strip_domains",
            domains.iter().map(|d| d.to_string()).collect(),
        )
        .unwrap()
    }

    #[test]
    fn listed_domains_are_taken_off_in_both_forms() {
        let n = names(&["CORP", "corp.example.org"]);
        assert_eq!(n.key("CORP\\Alice"), "alice");
        assert_eq!(n.key("corp\\alice"), "alice");
        assert_eq!(n.key("alice@Corp.Example.org"), "alice");
        assert_eq!(n.key(" Alice "), "alice");
        // Other domains stay: OTHER\alice is somebody else (and not in the directory).
        assert_eq!(n.key("OTHER\\alice"), "other\\alice");
        assert_eq!(n.key("alice@other.example"), "alice@other.example");
        // Nothing left after the domain: the name stays as typed.
        assert_eq!(n.key("CORP\\"), "corp\\");
        assert_eq!(n.key("@corp.example.org"), "@corp.example.org");
    }

    #[test]
    fn without_domains_names_are_only_folded() {
        let n = names(&[]);
        assert_eq!(n.key("CORP\\Alice"), "corp\\alice");
        assert_eq!(n.key("Alice@corp.example.org"), "alice@corp.example.org");
    }

    #[test]
    fn a_domain_with_a_separator_is_refused() {
        for bad in ["CORP\\", "@corp.example.org", "", "two words"] {
            let e = UserNames::new("ldap.strip_domains", vec![bad.into()]).unwrap_err();
            assert!(e.to_string().contains("ldap.strip_domains"), "{e}");
        }
    }
}
