//! What a directory's bare answer leaves an admin to guess, said where the answer is shown
//! (the audit reason, the log, `config check`): a `base_dn` slapd calls missing that is only
//! hidden from the service account, and a URL whose scheme does not fit its port.

use ldap3::LdapResult;

use super::ldap::LdapSettings;

/// The account the directory answers, for a message.
pub(crate) fn who(settings: &LdapSettings) -> String {
    if settings.bind_dn.is_empty() {
        "an anonymous bind (no [ldap] bind_dn)".into()
    } else {
        format!("the service account {}", settings.bind_dn)
    }
}

/// A noSuchObject answer (`res`) to a search under `[ldap] base_dn`. slapd answers so
/// for an entry the account may not see as well as for one that is not there, and gives no
/// matched DN then; for a typo it names the deepest entry it has above base_dn. Without
/// this, an admin who checked the spelling of a base_dn hidden by an ACL had nowhere to go.
pub(crate) fn base_dn_missing(settings: &LdapSettings, res: &LdapResult) -> String {
    let base = &settings.base_dn;
    let wanted = rdns(base);
    let matched = rdns(&res.matched);
    let above = !matched.is_empty()
        && matched.len() < wanted.len()
        && wanted[wanted.len() - matched.len()..] == matched[..];
    if above {
        // The first entry missing below the one the directory has: where the typo is.
        let first_missing = base
            .split(',')
            .skip(wanted.len() - matched.len() - 1)
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "[ldap] base_dn {base:?} is not in the directory: it has {:?}, but no {:?} \
             (a typo?) ({res})",
            res.matched,
            first_missing.trim()
        )
    } else {
        format!(
            "[ldap] base_dn {base:?} is not in the directory, or {} may not read it (an \
             ACL) ({res})",
            who(settings)
        )
    }
}

/// A DN's RDNs, compared as `same_dn` compares them: without case, and without the spaces
/// around `,` and `=`.
fn rdns(dn: &str) -> Vec<String> {
    if dn.trim().is_empty() {
        return Vec::new();
    }
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_such_object(matched: &str) -> LdapResult {
        LdapResult {
            rc: 32,
            matched: matched.into(),
            text: String::new(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        }
    }

    fn settings(base: &str) -> LdapSettings {
        LdapSettings {
            base_dn: base.into(),
            bind_dn: "cn=svc,dc=corp,dc=example".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_base_dn_with_a_parent_in_the_directory_is_called_a_typo_else_maybe_hidden() {
        let s = settings("ou=Users, dc=corp,dc=example");
        let typo = base_dn_missing(&s, &no_such_object("dc=corp,dc=example"));
        assert!(
            typo.contains(
                "it has \"dc=corp,dc=example\", but no \"ou=Users, dc=corp,dc=example\" (a typo?)"
            ),
            "{typo}"
        );
        let deeper = base_dn_missing(
            &settings("ou=a,ou=b,dc=corp,dc=example"),
            &no_such_object("DC=corp, DC=example"),
        );
        assert!(
            deeper.contains("but no \"ou=b,dc=corp,dc=example\""),
            "{deeper}"
        );
        for matched in ["", "dc=other,dc=example", "ou=Users,dc=corp,dc=example"] {
            let hidden = base_dn_missing(&s, &no_such_object(matched));
            assert!(
                hidden.contains(
                    "is not in the directory, or the service account cn=svc,dc=corp,dc=example \
                     may not read it (an ACL)"
                ),
                "{matched}: {hidden}"
            );
        }
    }
}
