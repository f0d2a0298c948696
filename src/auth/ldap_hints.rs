//! What a directory's bare answer leaves an admin to guess, said where the answer is shown
//! (the audit reason, the log, `config check`): a `base_dn` slapd calls missing that is only
//! hidden from the service account, and a URL whose scheme does not fit its port.

use ldap3::LdapResult;

use super::ldap::{LdapAuth, LdapSettings};

impl LdapAuth {
    /// `msg`, a failure on the URL at `idx`, with [`port_hint`]'s question when it fits.
    pub(super) fn port_hinted(&self, idx: usize, msg: String) -> String {
        let url = &self.settings.urls[idx];
        match port_hint(url, self.settings.starttls, &msg) {
            Some(hint) => format!("{msg} {hint}"),
            None => msg,
        }
    }
}

impl LdapAuth {
    /// For a connect to the URL at `idx` that timed out with TLS to set up (`ldaps://`, or
    /// StartTLS): whether the server takes a bare TCP connection there in time, which says
    /// it was the handshake that went unanswered, as when TLS and plain LDAP are crossed
    /// (StartTLS sent to an LDAPS port waits for ever). For `config check` and the start's
    /// check only: a login does not spend another connect on it.
    pub(super) async fn handshake_unanswered(&self, idx: usize) -> Option<&'static str> {
        let url = url::Url::parse(&self.settings.urls[idx]).ok()?;
        let ldaps = url.scheme().eq_ignore_ascii_case("ldaps");
        if !ldaps && !self.settings.starttls {
            return None;
        }
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = url.port().unwrap_or(if ldaps { 636 } else { 389 });
        let tcp = tokio::net::TcpStream::connect((host, port));
        tokio::time::timeout(self.settings.connect_timeout, tcp)
            .await
            .ok()?
            .ok()?;
        Some(if ldaps {
            "(the server takes TCP connections there but did not finish the TLS handshake: \
             is this port plain LDAP? ldaps:// is usually port 636)"
        } else {
            "(the server takes TCP connections there but did not answer StartTLS: is this \
             port LDAPS? then use ldaps:// and starttls = false)"
        })
    }
}

/// A question for a failure that looks like TLS and plain LDAP crossed: `ldaps://` to a
/// plain LDAP port ends the TLS handshake ("tls handshake eof"), and `ldap://` to an LDAPS
/// port has its first request dropped ("channel closed"). The bare errors named neither.
/// A question, not a finding: a server going away mid-request says the same.
pub(crate) fn port_hint(url: &str, starttls: bool, error: &str) -> Option<&'static str> {
    let error = error.to_ascii_lowercase();
    let tls = url.to_ascii_lowercase().starts_with("ldaps://");
    let any = |words: &[&str]| words.iter().any(|w| error.contains(w));
    if tls
        && any(&[
            "tls handshake eof",
            "invalidcontenttype",
            "invalid content type",
            "corrupt message",
        ])
    {
        return Some("(is this port plain LDAP? ldaps:// is usually port 636)");
    }
    if !tls && !starttls && any(&["channel closed", "connection reset", "broken pipe"]) {
        return Some("(is this port LDAPS? then use ldaps://)");
    }
    None
}

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

/// A DN's RDNs as they compare (`same_dn`): without case, and without the spaces around
/// `,` and `=`; none for a blank DN.
pub(super) fn rdns(dn: &str) -> Vec<String> {
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

/// A DN as RFC 4514 reads it: its RDNs, each a sorted list of (attribute, value), both lower
/// case, with escapes (`\,`, `\2C`, `\C3\BC`) and LDAPv2's quotes read and the spaces
/// around `=`, `,` and `+` left out; `None` for text that is no DN (an escape cut short, a
/// value with no attribute).
pub(crate) fn parse_dn(dn: &str) -> Option<Vec<Vec<(String, String)>>> {
    let mut rdns = vec![Vec::new()];
    let mut attr = String::new();
    let mut value: Vec<u8> = Vec::new();
    let mut in_value = false;
    let mut quoted = false;
    // Where the value's last byte that must be kept ends: escaped and quoted spaces stay.
    let mut kept = 0;
    let bytes = dn.as_bytes();
    let mut i = 0;
    /// One attribute and value read: into the RDN being read.
    fn finish(
        rdns: &mut [Vec<(String, String)>],
        attr: &mut String,
        value: &mut Vec<u8>,
        kept: usize,
    ) -> Option<()> {
        value.truncate(kept.max(value.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 1)));
        let a = attr.trim().to_ascii_lowercase();
        if a.is_empty() {
            return None;
        }
        let v = String::from_utf8(std::mem::take(value))
            .ok()?
            .to_lowercase();
        rdns.last_mut()?.push((a, v));
        attr.clear();
        Some(())
    }
    while i < bytes.len() {
        let c = bytes[i];
        if !in_value {
            if c == b'=' {
                in_value = true;
                kept = 0;
                // Leading spaces of a value are not part of it.
                while bytes.get(i + 1) == Some(&b' ') {
                    i += 1;
                }
            } else {
                attr.push(c as char);
            }
            i += 1;
            continue;
        }
        match c {
            b'"' if value.is_empty() && !quoted => quoted = true,
            b'"' if quoted => {
                quoted = false;
                kept = value.len();
            }
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                if next.is_ascii_hexdigit() {
                    let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                    value.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                } else {
                    value.push(next);
                    i += 1;
                }
                kept = value.len();
            }
            b',' | b';' | b'+' if !quoted => {
                finish(&mut rdns, &mut attr, &mut value, kept)?;
                in_value = false;
                if c != b'+' {
                    rdns.push(Vec::new());
                }
            }
            _ => {
                value.push(c);
                if quoted {
                    kept = value.len();
                }
            }
        }
        i += 1;
    }
    if quoted || !in_value {
        return None;
    }
    finish(&mut rdns, &mut attr, &mut value, kept)?;
    for rdn in &mut rdns {
        rdn.sort();
    }
    Some(rdns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_plain_ports_crossed_get_a_question() {
        let plain = Some("(is this port plain LDAP? ldaps:// is usually port 636)");
        let ldaps = Some("(is this port LDAPS? then use ldaps://)");
        assert_eq!(
            port_hint("ldaps://dc1:389", false, "tls handshake eof"),
            plain
        );
        assert_eq!(
            port_hint(
                "LDAPS://dc1:389",
                false,
                "TLS: received corrupt message of type InvalidContentType"
            ),
            plain
        );
        assert_eq!(
            port_hint(
                "ldap://dc1:636",
                false,
                "service bind: result recv error: channel closed"
            ),
            ldaps
        );
        // Not for what has other causes: a refused connection, a timeout, StartTLS.
        assert_eq!(
            port_hint("ldaps://dc1", false, "Connection refused (os error 111)"),
            None
        );
        assert_eq!(port_hint("ldap://dc1", false, "connect timed out"), None);
        assert_eq!(port_hint("ldap://dc1:636", true, "channel closed"), None);
    }

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
