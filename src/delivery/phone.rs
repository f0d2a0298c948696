//! Phone numbers: whatever the directory or an admin wrote, normalised to E.164 (`+` and
//! 8 to 15 digits), and masked for prompts ("****1234"). A hand check rather than a full
//! numbering-plan library: providers validate the number again, and a wrong number fails
//! the send with a clear audit reason.

use crate::auth::UserInfo;
use crate::config::delivery::{PhoneConfig, PhoneSource};
use crate::store::UserProfile;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error(
        "{0:?} has characters other than digits, spaces, dashes, dots, slashes and parentheses \
         (an extension, \"x123\" or \"ext. 123\", cannot be dialled: leave it out)"
    )]
    Characters(String),
    #[error("{0:?} has no country code and no [phone] default_country_code is set")]
    NoCountryCode(String),
    /// The number written, the digits of the number it makes, and the default country code
    /// when it was added: "0" with 49 makes "+49", and "\"0\" has 2 digits" puzzled the
    /// admin who typed one.
    #[error("{0:?} {made}; E.164 numbers have 8 to 15", made = digits_made(*.1, .2.as_deref()))]
    Length(String, usize, Option<String>),
    #[error("{0:?} starts with 0 after the country prefix; no country code starts with 0")]
    CountryCode(String),
    #[error("{0:?} is in a country [phone] allowed_country_codes does not list")]
    Country(String),
}

impl PhoneError {
    /// The same, with the number shown as its last four characters only: for the log,
    /// where phone numbers are masked (the admin who typed one sees it whole).
    pub fn masked(&self) -> String {
        let hide = |raw: &str| format!("…{}", last_four(raw));
        match self {
            PhoneError::Characters(r) => PhoneError::Characters(hide(r)),
            PhoneError::NoCountryCode(r) => PhoneError::NoCountryCode(hide(r)),
            PhoneError::Length(r, n, cc) => PhoneError::Length(hide(r), *n, cc.clone()),
            PhoneError::CountryCode(r) => PhoneError::CountryCode(hide(r)),
            PhoneError::Country(r) => PhoneError::Country(hide(r)),
        }
        .to_string()
    }
}

/// How many digits a number too short or too long made, saying so where the default country
/// code was added to what was written.
fn digits_made(n: usize, default_country_code: Option<&str>) -> String {
    match default_country_code {
        Some(cc) => format!("gives {n} digits with the default country code {cc} added"),
        None => format!("has {n} digits"),
    }
}

/// Countries whose national numbers keep their leading 0 after the country code (Italy's
/// `06 1234 5678` is `+39 06 1234 5678`): Italy, San Marino, Vatican City; Côte d'Ivoire
/// (2021) and Benin (2024), whose ten-digit numbers start with 0 (`+229 01 97 12 34 56`);
/// the Republic of the Congo, whose nine-digit ones do.
const KEEPS_LEADING_ZERO: [&str; 6] = ["39", "378", "379", "225", "229", "242"];

/// The two-digit country codes (E.164's assignments: +1 and +7 have one digit, every code
/// not listed here three). Country codes are a prefix code, so this tells where one ends.
const TWO_DIGIT_COUNTRY_CODES: [&str; 44] = [
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// The country code an international number (digits after the `+`) starts with.
pub(crate) fn country_code(international: &str) -> &str {
    let len = match international.as_bytes().first() {
        Some(b'1' | b'7') => 1,
        _ if international
            .get(..2)
            .is_some_and(|p| TWO_DIGIT_COUNTRY_CODES.contains(&p)) =>
        {
            2
        }
        _ => 3,
    };
    international.get(..len).unwrap_or(international)
}

/// Countries whose national trunk prefix is not a lone 0, and the lengths of their national
/// numbers: Russia and Kazakhstan (8, `8 912 345-67-89` is `+7 912 345 67 89`), Hungary
/// (06), Belarus (8 0), Turkmenistan (8). The prefix is taken off only where what is left
/// has such a length: St Petersburg's `812 345 67 89`, written without it, keeps its 8.
/// Dropping a 0 there made a number of the wrong length that still passed the length check.
const TRUNK_PREFIXES: [(&str, &str, &[usize]); 4] = [
    ("7", "8", &[10]),
    ("36", "06", &[8, 9]),
    ("375", "80", &[9]),
    ("993", "8", &[8]),
];

/// An international number with the national trunk 0 after its country code (`+49 0171…`,
/// a country code column and a national number joined by a script) without it, as `(0)`
/// is dropped: the 0 is dialled only within the country, and `+4901711234567` reaches no
/// one. Not where national numbers keep it ([`KEEPS_LEADING_ZERO`]), nor after a code
/// that starts with 0 (refused below).
fn without_trunk_zero(international: String) -> String {
    let cc = country_code(&international);
    let rest = &international[cc.len()..];
    match rest.strip_prefix('0') {
        Some(national) if !cc.starts_with('0') && !KEEPS_LEADING_ZERO.contains(&cc) => {
            format!("{cc}{national}")
        }
        _ => international,
    }
}

/// `+49 (0)171 123-4567` → `+491711234567`; `0171 1234567` with country code 49 → the same;
/// `0049…` → `+49…`.
pub fn normalise(raw: &str, default_country_code: &str) -> Result<String, PhoneError> {
    let t = raw.trim();
    let plus = t.starts_with('+');
    let body = t.strip_prefix('+').unwrap_or(t);
    // "(0)" is the national trunk prefix written inside an international number: its 0 is
    // read as any trunk 0 after a country code is (`without_trunk_zero`), dropped where
    // national numbers do not keep it. Dropped everywhere, `+39 (0)6 1234 5678` (written
    // as UK and German numbers are) became +39 6…, which reaches no one in Rome.
    let mut digits = String::new();
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            // Also the no-break spaces and dashes that numbers pasted from a mail client
            // or a word processor carry.
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            '\u{a0}'
            | '\u{202f}'
            | '\u{2007}'
            | '\u{2009}'
            | '\u{2010}'..='\u{2015}'
            | '\u{2212}' => {}
            _ => return Err(PhoneError::Characters(raw.to_string())),
        }
    }
    // Whether default_country_code was put in front of what was written.
    let mut added = true;
    let international = if plus {
        added = false;
        without_trunk_zero(digits)
    } else if let Some(rest) = digits.strip_prefix("00") {
        added = false;
        without_trunk_zero(rest.to_string())
    } else if default_country_code == "1" {
        // North America: no area code starts with 0 or 1, so a leading 1 is the country
        // code already ("1 (555) 010-0123") and 011 the international prefix.
        match (digits.strip_prefix("011"), digits.strip_prefix('1')) {
            (Some(rest), _) => {
                added = false;
                rest.to_string()
            }
            (None, Some(_)) => {
                added = false;
                digits
            }
            (None, None) => format!("1{digits}"),
        }
    } else if default_country_code.is_empty() {
        return Err(PhoneError::NoCountryCode(raw.to_string()));
    } else if KEEPS_LEADING_ZERO.contains(&default_country_code) {
        format!("{default_country_code}{digits}")
    } else {
        let national = TRUNK_PREFIXES
            .iter()
            .find(|(cc, _, _)| *cc == default_country_code)
            .and_then(|(_, trunk, lengths)| {
                digits
                    .strip_prefix(trunk)
                    .filter(|rest| lengths.contains(&rest.len()))
            })
            .or_else(|| digits.strip_prefix('0'))
            .unwrap_or(&digits);
        format!("{default_country_code}{national}")
    };
    // "+0…" or "000…": a typo or a trunk prefix too many, never a country code. Sent as is,
    // the provider would call or text whatever number the digits make.
    if international.starts_with('0') {
        return Err(PhoneError::CountryCode(raw.to_string()));
    }
    if !(8..=15).contains(&international.len()) {
        let added = added.then(|| default_country_code.to_string());
        return Err(PhoneError::Length(
            raw.to_string(),
            international.len(),
            added,
        ));
    }
    Ok(format!("+{international}"))
}

/// `raw` as a number texts and calls may go to: normalised to E.164 with `cfg`'s
/// default country code, and in a country `cfg.allowed_country_codes` lists (any, when it
/// lists none). Whoever can set a number (a user writing their own directory attribute, an
/// admin's typo) otherwise chose where the organisation's texts and calls go: premium-rate
/// and satellite numbers cost it per message and per minute.
pub fn dialable(raw: &str, cfg: &PhoneConfig) -> Result<String, PhoneError> {
    let e164 = normalise(raw, &cfg.default_country_code)?;
    let allowed = &cfg.allowed_country_codes;
    if !allowed.is_empty() && !allowed.iter().any(|cc| e164[1..].starts_with(cc.as_str())) {
        return Err(PhoneError::Country(raw.to_string()));
    }
    Ok(e164)
}

/// The last four digits only, for prompts and logs. ASCII: a prompt is a Reply-Message,
/// and a NAS that shows it as Latin-1 (or in a terminal without UTF-8) would turn a "•"
/// into "â€¢".
pub fn mask(e164: &str) -> String {
    format!("****{}", last_four(e164))
}

/// `text` (a provider's error message) with every phone number masked as [`mask`] does:
/// Twilio's "Invalid 'To' Phone Number: +4915112345678" goes into the log and the audit
/// reason, where numbers are otherwise shown by their last four digits only. A number is 7
/// or more digits: after a `+` (or `%2B`, a gateway echoing the query it was sent) or from
/// a `(` (`(555) 010-0123`), with spaces, dashes, dots or brackets between groups, or
/// without one in a single run (a gateway's `msisdn 4915112345678`). Other long digit runs (a message id) are masked too; that
/// costs a log reader little.
pub fn mask_numbers(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let prefix = if b[i] == b'+' {
            1
        } else if b.len() - i >= 3 && b[i] == b'%' && b[i + 1] == b'2' && b[i + 2] | 0x20 == b'b' {
            3
        } else {
            0
        };
        let fresh = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        // `(555) 010-0123`: a national number written with its area code in brackets.
        let bracket = fresh && b[i] == b'(' && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        // Digit groups are joined only in a run that starts like a phone number: a dotted
        // address (192.0.2.1) or a date is not one.
        let joined = prefix > 0 || bracket;
        // A run starts at a `+`, a `(` before a digit, or a digit that does not continue a
        // word or a number.
        let starts = joined || (b[i].is_ascii_digit() && fresh);
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i + prefix + usize::from(bracket);
        let mut digits = String::new();
        let mut end = j;
        while j < b.len() {
            if b[j].is_ascii_digit() {
                digits.push(b[j] as char);
                j += 1;
                end = j;
                continue;
            }
            // Up to two separators between groups (`) ` in `+1 (555) 010-0123`), then a digit.
            let is_sep = |c: &u8| matches!(c, b' ' | b'-' | b'.' | b'(' | b')');
            let seps = b[j..].iter().take(2).take_while(|c| is_sep(c)).count();
            // A dot joins only digit to digit: ". " ends a sentence ("…5678. 30 retries")
            // once a number is there; before that, joining more is the safe side.
            let sentence = seps == 2 && b[j..j + 2].contains(&b'.') && digits.len() >= 7;
            if joined && seps > 0 && !sentence && b.get(j + seps).is_some_and(u8::is_ascii_digit) {
                j += seps;
            } else {
                break;
            }
        }
        if digits.len() >= 7 {
            out.push_str(&text[copied..i]);
            out.push_str(&mask(&digits));
            copied = end;
            i = end;
        } else {
            i = end.max(i + 1);
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn last_four(s: &str) -> String {
    let skip = s.chars().count().saturating_sub(4);
    s.chars().skip(skip).collect()
}

/// The user's number in E.164 from the first of `[phone] sources` that has a valid one, and
/// that source: what logins use (`pipeline::oob::phone_for`) and `config check --connect
/// --user` shows.
pub fn phone_from(
    cfg: &PhoneConfig,
    profile: &UserProfile,
    info: &UserInfo,
) -> Option<(PhoneSource, String)> {
    for source in &cfg.sources {
        let raw = match source {
            PhoneSource::Store => profile.phone.as_deref(),
            PhoneSource::Mobile => info.mobile.as_deref(),
            PhoneSource::Telephone => info.telephone.as_deref(),
        };
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            continue;
        };
        match dialable(raw, cfg) {
            Ok(p) => return Some((*source, p)),
            // A number an admin stored is the one the user was enrolled with: when it cannot
            // be dialled (outside allowed_country_codes, say), no text or call goes to the
            // directory's mobile instead, which users can often edit themselves.
            Err(e) if *source == PhoneSource::Store => {
                tracing::info!(problem = %e.masked(), "stored phone number cannot be dialled");
                return None;
            }
            Err(e) => {
                tracing::info!(source = ?source, problem = %e.masked(), "unusable phone number")
            }
        }
    }
    None
}

/// A number the directory holds for the user that texts and calls do not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnusedNumber {
    /// In an attribute `[phone] sources` leaves out.
    Unlisted,
    /// In a listed attribute, but not a number radmfa can dial: why, masked, and whether it
    /// is only the country code that is missing (a national number without
    /// `default_country_code`) rather than the number that is wrong (an extension, text).
    Unusable { why: String, no_country_code: bool },
}

/// Whether the directory holds a number for the user that texts and calls do not use
/// (`pipeline::oob::unused_directory_number`): such a user was meant to get texts or calls,
/// and is not one without a second factor.
pub fn unused_number(cfg: &PhoneConfig, info: &UserInfo) -> Option<UnusedNumber> {
    let sources = &cfg.sources;
    let mut unlisted = false;
    for (source, value) in [
        (PhoneSource::Mobile, &info.mobile),
        (PhoneSource::Telephone, &info.telephone),
    ] {
        let Some(raw) = value.as_deref().filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        if !sources.contains(&source) {
            unlisted = true;
        } else if let Err(e) = dialable(raw, cfg) {
            return Some(UnusedNumber::Unusable {
                why: e.masked(),
                no_country_code: matches!(e, PhoneError::NoCountryCode(_)),
            });
        }
    }
    unlisted.then_some(UnusedNumber::Unlisted)
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_a_provider_message_are_masked() {
        assert_eq!(
            super::mask_numbers("Invalid 'To' Phone Number: +4915112345678, see +1 and +"),
            "Invalid 'To' Phone Number: ****5678, see +1 and +"
        );
        assert_eq!(super::mask_numbers("no number"), "no number");
        // Brackets and dots, as people and some gateways write numbers.
        assert_eq!(
            super::mask_numbers("to +1 (555) 010-0123 or (555) 010-0123 or +44.20.7946.0958"),
            "to ****0123 or ****0123 or ****0958"
        );
        // A sentence's full stop is not part of the number before it.
        assert_eq!(
            super::mask_numbers("to +4915112345678. 30 retries"),
            "to ****5678. 30 retries"
        );
        // Before a number is whole, a stray dot does not cut it short.
        assert_eq!(super::mask_numbers("+1 555 .010 0123"), "****0123");
        // Not a number: dotted addresses, dates, short codes in brackets.
        assert_eq!(
            super::mask_numbers("from 192.0.2.1 on 2026.12.03 (error 20003) (12) 34"),
            "from 192.0.2.1 on 2026.12.03 (error 20003) (12) 34"
        );
        // As a gateway may echo them: percent-encoded, spaced, without the plus.
        assert_eq!(
            super::mask_numbers("bad to=%2B4915112345678&x=1"),
            "bad to=****5678&x=1"
        );
        assert_eq!(
            super::mask_numbers("msisdn 4915112345678 rejected (+49 151 1234-5678)"),
            "msisdn ****5678 rejected (****5678)"
        );
        // Short numbers (error codes, counts) and digits inside words stay.
        assert_eq!(
            super::mask_numbers("error 20003 for AC1234567890 at 12:30"),
            "error 20003 for AC1234567890 at 12:30"
        );
    }

    /// Only the countries listed, when some are: a premium or satellite number someone
    /// wrote into their own directory entry is refused, as any undialable number is.
    #[test]
    fn numbers_go_only_to_the_countries_allowed() {
        let cfg = |allowed: &[&str]| crate::config::delivery::PhoneConfig {
            sources: vec![],
            sources_given: true,
            default_country_code: "49".into(),
            allowed_country_codes: allowed.iter().map(|s| s.to_string()).collect(),
        };
        let open = cfg(&[]);
        assert_eq!(
            super::dialable("+882 16 1234 5678", &open).as_deref(),
            Ok("+8821612345678")
        );
        let de_at = cfg(&["49", "43"]);
        assert_eq!(
            super::dialable("0171 1234567", &de_at).as_deref(),
            Ok("+491711234567")
        );
        assert!(super::dialable("+43 664 1234567", &de_at).is_ok());
        for foreign in ["+882 16 1234 5678", "+1 900 555 0199", "00 44 909 123 4567"] {
            let e = super::dialable(foreign, &de_at).unwrap_err();
            assert!(matches!(e, super::PhoneError::Country(_)), "{foreign}: {e}");
            assert!(!e.masked().contains("1234 5678"), "{}", e.masked());
        }
    }

    /// The stored number is the admin's: when it is outside the countries allowed, the
    /// directory's mobile (often the user's own to edit) is not used in its place.
    #[test]
    fn a_stored_number_that_cannot_be_dialled_is_not_replaced_by_the_directorys() {
        use crate::config::delivery::PhoneSource::{Mobile, Store};
        let cfg = crate::config::delivery::PhoneConfig {
            sources: vec![Store, Mobile],
            sources_given: true,
            default_country_code: "49".into(),
            allowed_country_codes: vec!["49".into()],
        };
        let info = crate::auth::UserInfo {
            mobile: Some("+49 171 7654321".into()),
            ..Default::default()
        };
        let stored = |phone: Option<&str>| crate::store::UserProfile {
            phone: phone.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(
            super::phone_from(&cfg, &stored(Some("+1 900 555 0199")), &info),
            None
        );
        // Nothing stored: the directory's number, as configured.
        assert_eq!(
            super::phone_from(&cfg, &stored(None), &info),
            Some((Mobile, "+491717654321".into()))
        );
        assert_eq!(
            super::phone_from(&cfg, &stored(Some("+49 151 1234567")), &info),
            Some((Store, "+491511234567".into()))
        );
    }

    #[test]
    fn a_masked_error_shows_four_characters_of_the_number() {
        let e = normalise("0171 1234567", "").unwrap_err();
        assert_eq!(
            e.masked(),
            "\"…4567\" has no country code and no [phone] default_country_code is set"
        );
        assert!(!normalise("+1 555 CALL-NOW", "")
            .unwrap_err()
            .masked()
            .contains("555"));
    }

    use super::*;

    #[test]
    fn normalises_common_spellings() {
        assert_eq!(normalise("+1 555 0100", ""), Ok("+15550100".into()));
        assert_eq!(
            normalise("+49 (0)171 123-4567", ""),
            Ok("+491711234567".into())
        );
        assert_eq!(
            normalise("+44 (0)20 7946 0958", ""),
            Ok("+442079460958".into())
        );
        // Where national numbers keep their 0, "(0)" is part of the number.
        assert_eq!(
            normalise("+39 (0)6 1234 5678", ""),
            Ok("+390612345678".into())
        );
        assert_eq!(
            normalise("(0)6 1234 5678", "39"),
            Ok("+390612345678".into())
        );
        assert_eq!(
            normalise("0049 171 1234567", ""),
            Ok("+491711234567".into())
        );
        assert_eq!(normalise("0171/1234567", "49"), Ok("+491711234567".into()));
        // The trunk 0 written after the country code (a script joining an export's
        // country code column to its national number), as "(0)" is.
        for joined in [
            "+49 0171 1234567",
            "+49 (0171) 123-4567",
            "0049 0171 1234567",
        ] {
            assert_eq!(
                normalise(joined, ""),
                Ok("+491711234567".into()),
                "{joined}"
            );
        }
        assert_eq!(
            normalise("+44 020 7946 0958", ""),
            Ok("+442079460958".into())
        );
        assert_eq!(normalise("+1 0555 010 0123", ""), Ok("+15550100123".into()));
        assert_eq!(
            normalise("+353 087 123 4567", ""),
            Ok("+353871234567".into())
        );
        // Where national numbers keep their 0: kept.
        assert_eq!(
            normalise("+39 06 1234 5678", ""),
            Ok("+390612345678".into())
        );
        assert_eq!(
            normalise("+225 07 07 12 34 56", ""),
            Ok("+2250707123456".into())
        );
        assert_eq!(
            normalise("+229 01 97 12 34 56", ""),
            Ok("+2290197123456".into())
        );
        assert_eq!(
            normalise("00229 0197123456", ""),
            Ok("+2290197123456".into())
        );
        assert_eq!(normalise("(555) 010-0123", "1"), Ok("+15550100123".into()));
        // North America's own ways of writing the country code and the way out.
        assert_eq!(
            normalise("1 (555) 010-0123", "1"),
            Ok("+15550100123".into())
        );
        assert_eq!(
            normalise("011 44 20 7946 0958", "1"),
            Ok("+442079460958".into())
        );
        // Pasted from a mail client: no-break spaces and an en dash.
        assert_eq!(
            normalise("+49\u{a0}171\u{202f}123\u{2013}4567", ""),
            Ok("+491711234567".into())
        );
        assert!(matches!(
            normalise("0171 1234567", ""),
            Err(PhoneError::NoCountryCode(_))
        ));
        assert!(matches!(
            normalise("+1 555", ""),
            Err(PhoneError::Length(_, 4, None))
        ));
        assert!(matches!(
            normalise("+1 555 CALL NOW", ""),
            Err(PhoneError::Characters(_))
        ));
        assert!(matches!(
            normalise("+1234567890123456", ""),
            Err(PhoneError::Length(_, 16, None))
        ));
    }

    /// A number too short with the default country code added says so: "0" with 49 is
    /// "+49", and "\"0\" has 2 digits" counted digits the admin never typed.
    #[test]
    fn a_length_error_says_when_the_default_country_code_was_added() {
        let said = |raw: &str, cc: &str| normalise(raw, cc).unwrap_err().to_string();
        assert_eq!(
            said("0", "49"),
            "\"0\" gives 2 digits with the default country code 49 added; E.164 numbers \
             have 8 to 15"
        );
        assert_eq!(
            said("555 010", "1"),
            "\"555 010\" gives 7 digits with the default country code 1 added; E.164 \
             numbers have 8 to 15"
        );
        assert_eq!(
            said("+49 171", "49"),
            "\"+49 171\" has 5 digits; E.164 numbers have 8 to 15"
        );
        assert_eq!(
            said("0049 171", "49"),
            "\"0049 171\" has 5 digits; E.164 numbers have 8 to 15"
        );
    }

    #[test]
    fn no_country_code_starts_with_zero() {
        for raw in ["+049 171 1234567", "000 49 171 1234567", "+0 555 0100 123"] {
            assert!(
                matches!(normalise(raw, "49"), Err(PhoneError::CountryCode(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn italian_numbers_keep_their_leading_zero() {
        assert_eq!(normalise("06 1234 5678", "39"), Ok("+390612345678".into()));
        assert_eq!(normalise("333 123 4567", "39"), Ok("+393331234567".into()));
        assert_eq!(normalise("0549 123456", "378"), Ok("+3780549123456".into()));
        // Everywhere else the 0 is the trunk prefix.
        assert_eq!(normalise("06 1234 5678", "33"), Ok("+33612345678".into()));
    }

    #[test]
    fn trunk_prefixes_other_than_zero() {
        assert_eq!(normalise("8 912 345-67-89", "7"), Ok("+79123456789".into()));
        assert_eq!(normalise("912 345 67 89", "7"), Ok("+79123456789".into()));
        assert_eq!(normalise("06 30 123 4567", "36"), Ok("+36301234567".into()));
        assert_eq!(
            normalise("8 029 123 45 67", "375"),
            Ok("+375291234567".into())
        );
        assert_eq!(normalise("8 12 345678", "993"), Ok("+99312345678".into()));
        // An area code that starts with the trunk digit, written without the prefix.
        assert_eq!(normalise("812 345 67 89", "7"), Ok("+78123456789".into()));
        assert_eq!(normalise("8 812 345 67 89", "7"), Ok("+78123456789".into()));
        // The lone 0 is still taken off where it is written so.
        assert_eq!(
            normalise("029 123 45 67", "375"),
            Ok("+375291234567".into())
        );
        assert_eq!(normalise("06 1 234 5678", "36"), Ok("+3612345678".into()));
    }

    #[test]
    fn masks_all_but_four() {
        assert_eq!(mask("+15550101234"), "****1234");
        assert_eq!(mask("+12"), "****+12");
    }
}
