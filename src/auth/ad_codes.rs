//! Active Directory bind sub-codes.
//!
//! When a simple bind fails, AD answers `invalidCredentials` (rc 49) for almost every reason
//! and puts the real one into the diagnostic text as a hexadecimal Win32 error code after
//! `data`, e.g.
//!
//! ```text
//! 80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563
//! ```
//!
//! [`parse`] extracts that code. Samba AD uses the same format. OpenLDAP and other
//! directories carry no such code, and `parse` returns `None` for their messages.

use std::fmt;

/// Why Active Directory refused a bind, from the `data XXX` part of the diagnostic text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdReason {
    /// 525: no such user (the DN/UPN does not resolve to an account).
    UserNotFound,
    /// 52e: the account exists and the password is wrong.
    BadPassword,
    /// 530: not permitted to log on at this time (logon hours).
    LogonTimeRestriction,
    /// 531: not permitted to log on from this workstation.
    WorkstationRestriction,
    /// 532: password expired.
    PasswordExpired,
    /// 533: account disabled.
    AccountDisabled,
    /// 701: account expired.
    AccountExpired,
    /// 773: user must change password before first logon / after reset.
    MustChangePassword,
    /// 775: account locked out.
    AccountLockedOut,
    /// Any other sub-code, lower-case hex as AD wrote it.
    Other(String),
}

impl AdReason {
    /// The sub-code as AD writes it (lower-case hex, e.g. `"52e"`).
    pub fn code(&self) -> &str {
        match self {
            AdReason::UserNotFound => "525",
            AdReason::BadPassword => "52e",
            AdReason::LogonTimeRestriction => "530",
            AdReason::WorkstationRestriction => "531",
            AdReason::PasswordExpired => "532",
            AdReason::AccountDisabled => "533",
            AdReason::AccountExpired => "701",
            AdReason::MustChangePassword => "773",
            AdReason::AccountLockedOut => "775",
            AdReason::Other(code) => code,
        }
    }

    fn from_code(code: &str) -> AdReason {
        match code {
            "525" => AdReason::UserNotFound,
            "52e" => AdReason::BadPassword,
            "530" => AdReason::LogonTimeRestriction,
            "531" => AdReason::WorkstationRestriction,
            "532" => AdReason::PasswordExpired,
            "533" => AdReason::AccountDisabled,
            "701" => AdReason::AccountExpired,
            "773" => AdReason::MustChangePassword,
            "775" => AdReason::AccountLockedOut,
            other => AdReason::Other(other.to_string()),
        }
    }
}

impl fmt::Display for AdReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdReason::UserNotFound => f.write_str("user not found (AD 525)"),
            AdReason::BadPassword => f.write_str("bad password (AD 52e)"),
            AdReason::LogonTimeRestriction => {
                f.write_str("logon not permitted at this time (AD 530)")
            }
            AdReason::WorkstationRestriction => {
                f.write_str("logon not permitted from this workstation (AD 531)")
            }
            AdReason::PasswordExpired => f.write_str("password expired (AD 532)"),
            AdReason::AccountDisabled => f.write_str("account disabled (AD 533)"),
            AdReason::AccountExpired => f.write_str("account expired (AD 701)"),
            AdReason::MustChangePassword => f.write_str("user must change password (AD 773)"),
            AdReason::AccountLockedOut => f.write_str("account locked out (AD 775)"),
            AdReason::Other(code) => write!(f, "directory refused bind (AD data {code})"),
        }
    }
}

/// Extract the AD sub-code from a bind diagnostic message.
///
/// Looks for the word `data` followed by a hexadecimal code, as in
/// `"..., data 775, v4563"`. Returns `None` when there is no such code or it is `0`
/// (AD writes `data 0` for errors that have no sub-code, such as "strong auth required").
pub fn parse(diagnostic: &str) -> Option<AdReason> {
    // AD terminates the text with a NUL; tolerate it and any other trailing junk.
    let text = diagnostic.trim_end_matches(['\0', ' ', '\n', '\r']);
    let mut rest = text;
    while let Some(pos) = rest.find("data ") {
        let preceded_ok = pos == 0 || {
            let prev = rest.as_bytes()[pos - 1];
            prev == b' ' || prev == b','
        };
        let after = &rest[pos + "data ".len()..];
        let code: String = after
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        let terminated_ok = after[code.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == ',' || c == ' ' || c == '\0');
        if preceded_ok && !code.is_empty() && code.len() <= 8 && terminated_ok {
            let code = code.to_ascii_lowercase();
            let trimmed = code.trim_start_matches('0');
            if trimmed.is_empty() {
                return None;
            }
            return Some(AdReason::from_code(trimmed));
        }
        rest = &rest[pos + "data ".len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(code: &str) -> String {
        format!(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {code}, v4563\0"
        )
    }

    #[test]
    fn parses_all_known_codes() {
        let cases = [
            ("525", AdReason::UserNotFound),
            ("52e", AdReason::BadPassword),
            ("530", AdReason::LogonTimeRestriction),
            ("531", AdReason::WorkstationRestriction),
            ("532", AdReason::PasswordExpired),
            ("533", AdReason::AccountDisabled),
            ("701", AdReason::AccountExpired),
            ("773", AdReason::MustChangePassword),
            ("775", AdReason::AccountLockedOut),
        ];
        for (code, want) in cases {
            assert_eq!(parse(&msg(code)), Some(want.clone()), "code {code}");
            assert_eq!(want.code(), code);
        }
    }

    #[test]
    fn real_messages() {
        assert_eq!(
            parse("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563"),
            Some(AdReason::BadPassword)
        );
        // Windows Server 2008 / Samba style, with the trailing NUL AD sends.
        assert_eq!(
            parse("80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 775, v1db1\0"),
            Some(AdReason::AccountLockedOut)
        );
        assert_eq!(
            parse("80090308: LdapErr: DSID-0C090447, comment: AcceptSecurityContext error, data 773, v3839"),
            Some(AdReason::MustChangePassword)
        );
        assert_eq!(
            parse("80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 525, v2580"),
            Some(AdReason::UserNotFound)
        );
        // Upper-case hex is normalised.
        assert_eq!(
            parse("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52E, v4563"),
            Some(AdReason::BadPassword)
        );
    }

    #[test]
    fn unknown_code_is_other() {
        let r = parse(&msg("56b")).unwrap();
        assert_eq!(r, AdReason::Other("56b".into()));
        assert_eq!(r.to_string(), "directory refused bind (AD data 56b)");
    }

    #[test]
    fn no_code() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("Invalid credentials"), None);
        // OpenLDAP texts carry nothing.
        assert_eq!(parse("invalid credentials (49)"), None);
        // "data 0" means no sub-code.
        assert_eq!(
            parse("00002028: LdapErr: DSID-0C090202, comment: The server requires binds to turn on integrity checking if SSL\\TLS are not already active on the connection, data 0, v4563"),
            None
        );
        // The word must be "data", not a suffix of another word, and followed by hex.
        assert_eq!(parse("metadata 52e, v1"), None);
        assert_eq!(parse("data xyz"), None);
    }

    #[test]
    fn display_is_human() {
        assert_eq!(
            AdReason::AccountDisabled.to_string(),
            "account disabled (AD 533)"
        );
        assert_eq!(AdReason::BadPassword.to_string(), "bad password (AD 52e)");
    }
}
