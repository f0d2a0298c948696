//! Phone numbers: whatever the directory or an admin wrote, normalised to E.164 (`+` and
//! 8 to 15 digits), and masked for prompts ("••••1234"). A hand check rather than a full
//! numbering-plan library: providers validate the number again, and a wrong number fails
//! the send with a clear audit reason.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("{0:?} has characters other than digits, spaces, dashes, dots and parentheses")]
    Characters(String),
    #[error("{0:?} has no country code and no [phone] default_country_code is set")]
    NoCountryCode(String),
    #[error("{0:?} has {1} digits; E.164 numbers have 8 to 15")]
    Length(String, usize),
    #[error("{0:?} starts with 0 after the country prefix; no country code starts with 0")]
    CountryCode(String),
}

impl PhoneError {
    /// The same, with the number shown as its last four characters only: for the log,
    /// where phone numbers are masked (the admin who typed one sees it whole).
    pub fn masked(&self) -> String {
        let hide = |raw: &str| format!("…{}", last_four(raw));
        match self {
            PhoneError::Characters(r) => PhoneError::Characters(hide(r)),
            PhoneError::NoCountryCode(r) => PhoneError::NoCountryCode(hide(r)),
            PhoneError::Length(r, n) => PhoneError::Length(hide(r), *n),
            PhoneError::CountryCode(r) => PhoneError::CountryCode(hide(r)),
        }
        .to_string()
    }
}

/// Countries whose national numbers keep their leading 0 after the country code (Italy's
/// `06 1234 5678` is `+39 06 1234 5678`): Italy, San Marino, Vatican City.
const KEEPS_LEADING_ZERO: [&str; 3] = ["39", "378", "379"];

/// `+49 (0)171 123-4567` → `+491711234567`; `0171 1234567` with country code 49 → the same;
/// `0049…` → `+49…`.
pub fn normalise(raw: &str, default_country_code: &str) -> Result<String, PhoneError> {
    let t = raw.trim();
    let plus = t.starts_with('+');
    let body = t.strip_prefix('+').unwrap_or(t);
    // "(0)" is the national trunk prefix written inside an international number.
    let body = body.replace("(0)", "");
    let mut digits = String::new();
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return Err(PhoneError::Characters(raw.to_string())),
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if default_country_code.is_empty() {
        return Err(PhoneError::NoCountryCode(raw.to_string()));
    } else if KEEPS_LEADING_ZERO.contains(&default_country_code) {
        format!("{default_country_code}{digits}")
    } else {
        format!(
            "{default_country_code}{}",
            digits.strip_prefix('0').unwrap_or(&digits)
        )
    };
    // "+0…" or "000…": a typo or a trunk prefix too many, never a country code. Sent as is,
    // the provider would call or text whatever number the digits make.
    if international.starts_with('0') {
        return Err(PhoneError::CountryCode(raw.to_string()));
    }
    if !(8..=15).contains(&international.len()) {
        return Err(PhoneError::Length(raw.to_string(), international.len()));
    }
    Ok(format!("+{international}"))
}

/// The last four digits only, for prompts and logs.
pub fn mask(e164: &str) -> String {
    format!("••••{}", last_four(e164))
}

/// `text` (a provider's error message) with every `+` and 7 or more digits masked as
/// [`mask`] does: Twilio's "Invalid 'To' Phone Number: +4915112345678" goes into the log and
/// the audit reason, where numbers are otherwise shown by their last four digits only.
pub fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('+') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits >= 7 {
            out.push_str(&mask(&after[..digits]));
        } else {
            out.push('+');
            out.push_str(&after[..digits]);
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

fn last_four(s: &str) -> String {
    let skip = s.chars().count().saturating_sub(4);
    s.chars().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_a_provider_message_are_masked() {
        assert_eq!(
            super::mask_numbers("Invalid 'To' Phone Number: +4915112345678, see +1 and +"),
            "Invalid 'To' Phone Number: ••••5678, see +1 and +"
        );
        assert_eq!(super::mask_numbers("no number"), "no number");
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
            normalise("0049 171 1234567", ""),
            Ok("+491711234567".into())
        );
        assert_eq!(normalise("0171/1234567", "49"), Ok("+491711234567".into()));
        assert_eq!(normalise("(555) 010-0123", "1"), Ok("+15550100123".into()));
        assert!(matches!(
            normalise("0171 1234567", ""),
            Err(PhoneError::NoCountryCode(_))
        ));
        assert!(matches!(
            normalise("+1 555", ""),
            Err(PhoneError::Length(_, 4))
        ));
        assert!(matches!(
            normalise("+1 555 CALL NOW", ""),
            Err(PhoneError::Characters(_))
        ));
        assert!(matches!(
            normalise("+1234567890123456", ""),
            Err(PhoneError::Length(_, 16))
        ));
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
    fn masks_all_but_four() {
        assert_eq!(mask("+15550101234"), "••••1234");
        assert_eq!(mask("+12"), "••••+12");
    }
}
