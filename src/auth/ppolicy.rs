//! The LDAP password policy control (draft-behera-ldap-password-policy, OID
//! 1.3.6.1.4.1.42.2.27.8.5.1), which OpenLDAP's ppolicy overlay, 389-ds and FreeIPA answer.
//!
//! A password an admin reset with "must change" (`pwdReset` with `pwdMustChange`) still binds
//! (result 0): the session may then only change the password. Only this control says so,
//! and only when the bind asked for it. So does an expired password on a grace login (the
//! control's graceAuthNsRemaining warning, or 389-ds's and FreeIPA's Netscape expired
//! control, which FreeIPA also sends after an admin's reset). Active Directory refuses such
//! binds itself (data 773, 532) and ignores the control, which is not critical.
//!
//! Hand-written for the response: ldap3 sends any raw control but parses only a few.

use ldap3::asn1::{parse_tag, TagClass, PL};
use ldap3::controls::RawControl;
use ldap3::LdapResult;

pub const OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// `changeAfterReset` in the response's error enumeration.
const CHANGE_AFTER_RESET: u64 = 2;

/// The request control: no value, not critical (a directory without it just binds).
pub fn request() -> RawControl {
    RawControl {
        ctype: OID.into(),
        crit: false,
        val: None,
    }
}

/// Netscape's "password expired" response control, which 389-ds and FreeIPA attach to a
/// bind that succeeded on an expired password (a grace login, or FreeIPA's reset: an admin
/// reset there sets the password's expiry to now and never says changeAfterReset).
pub const NETSCAPE_EXPIRED_OID: &str = "2.16.840.1.113730.3.4.4";

/// Whether the bind's answer says the password must be changed before anything else: reset
/// by an admin with "must change" (changeAfterReset), or expired and let in on a grace
/// login (the ppolicy warning graceAuthNsRemaining, or the Netscape expired control). A
/// grace login is for changing the password; Active Directory refuses an expired one (532).
pub fn must_change(res: &LdapResult) -> bool {
    res.ctrls.iter().any(|c| {
        let c = &c.1;
        if c.ctype == NETSCAPE_EXPIRED_OID {
            return true;
        }
        c.ctype == OID
            && c.val
                .as_deref()
                .is_some_and(|v| error(v) == Some(CHANGE_AFTER_RESET) || grace_login(v))
    })
}

/// `passwordExpired` and `accountLocked` in the response's error enumeration.
const PASSWORD_EXPIRED: u64 = 0;
const ACCOUNT_LOCKED: u64 = 1;

/// Why a refused bind (invalidCredentials) was refused, when the control says it is the
/// account's state rather than the password: OpenLDAP answers 49 for a locked account
/// (`pwdAccountLockedTime`, with `ppolicy_use_lockout`) and for an expired password with no
/// grace logins left, and only the control tells them from a wrong password. The helpdesk
/// needs the difference: "bad password" sent them the wrong way.
pub fn refusal(res: &LdapResult) -> Option<&'static str> {
    res.ctrls.iter().find_map(|c| {
        let c = &c.1;
        if c.ctype != OID {
            return None;
        }
        match error(c.val.as_deref()?)? {
            PASSWORD_EXPIRED => Some("password expired"),
            ACCOUNT_LOCKED => Some("account locked"),
            _ => None,
        }
    })
}

/// `warning [0] CHOICE { timeBeforeExpiration [0], graceAuthNsRemaining [1] }`: whether the
/// warning is graceAuthNsRemaining, sent only for a bind on an expired password.
fn grace_login(value: &[u8]) -> bool {
    let Ok((_, seq)) = parse_tag(value) else {
        return false;
    };
    let PL::C(items) = seq.payload else {
        return false;
    };
    items
        .into_iter()
        .filter(|t| t.class == TagClass::Context && t.id == 0)
        .any(|warning| match warning.payload {
            PL::C(choice) => choice
                .iter()
                .any(|t| t.class == TagClass::Context && t.id == 1),
            _ => false,
        })
}

/// `PasswordPolicyResponseValue ::= SEQUENCE { warning [0] CHOICE {…} OPTIONAL,
/// error [1] ENUMERATED {…} OPTIONAL }`: the error, if any.
fn error(value: &[u8]) -> Option<u64> {
    let (_, seq) = parse_tag(value).ok()?;
    let PL::C(items) = seq.payload else {
        return None;
    };
    items
        .into_iter()
        .find(|t| t.class == TagClass::Context && t.id == 1)
        .and_then(|t| match t.payload {
            // A small non-negative ENUMERATED: big-endian octets.
            PL::P(octets) if !octets.is_empty() && octets.len() <= 8 => {
                Some(octets.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_read_and_warnings_are_not_errors() {
        // error: changeAfterReset
        assert_eq!(error(&[0x30, 0x03, 0x81, 0x01, 0x02]), Some(2));
        // warning: graceAuthNsRemaining 3, no error
        assert_eq!(error(&[0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x03]), None);
        // both: a warning, then error passwordExpired (0)
        assert_eq!(
            error(&[0x30, 0x08, 0xa0, 0x03, 0x80, 0x01, 0x05, 0x81, 0x01, 0x00]),
            Some(0)
        );
        // grace logins left: the password has expired; time before expiration: it has not
        assert!(grace_login(&[0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x03]));
        assert!(!grace_login(&[0x30, 0x05, 0xa0, 0x03, 0x80, 0x01, 0x05]));
        assert!(!grace_login(&[0x30, 0x03, 0x81, 0x01, 0x02]));
        assert!(!grace_login(&[0xff, 0xff]));
        // empty sequence, garbage, truncated
        assert_eq!(error(&[0x30, 0x00]), None);
        assert_eq!(error(&[0xff, 0xff]), None);
        assert_eq!(error(&[0x30, 0x03, 0x81, 0x01]), None);
    }
}
