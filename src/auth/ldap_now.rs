//! The time placeholders of `[ldap] enabled_filter`, filled in on every search.
//!
//! Where no user bind happens (app passwords, second-factor-only clients), the filter is all
//! that speaks for the directory, and some of what makes an account unusable is a time: AD's
//! `accountExpires` (100 ns intervals since 1601, UTC), FreeIPA's `krbPrincipalExpiration`
//! or a `pwdEndTime` (GeneralizedTime). A fixed filter cannot compare those with now, so the
//! filter may say `{now_filetime}` or `{now_generalized}` and each search fills in the time
//! it is made, e.g. for Active Directory:
//! `(&(!(userAccountControl:1.2.840.113556.1.4.803:=2))(|(!(accountExpires=*))(accountExpires=0)(accountExpires>={now_filetime})))`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// 100 ns intervals since 1601-01-01 UTC (AD's Integer8 times).
pub const NOW_FILETIME: &str = "{now_filetime}";
/// `YYYYMMDDHHMMSSZ`, UTC (LDAP GeneralizedTime).
pub const NOW_GENERALIZED: &str = "{now_generalized}";

/// Seconds from 1601-01-01 to 1970-01-01.
const FILETIME_EPOCH_OFFSET_SECS: u64 = 11_644_473_600;

/// Whether `filter` has a time placeholder (so it must be filled in per search).
pub fn has_placeholders(filter: &str) -> bool {
    filter.contains(NOW_FILETIME) || filter.contains(NOW_GENERALIZED)
}

/// `filter` with the placeholders replaced by `now`. Their values are digits and `Z`,
/// nothing an LDAP filter would have to escape.
pub fn fill(filter: &str, now: SystemTime) -> String {
    if !has_placeholders(filter) {
        return filter.to_string();
    }
    let since_unix = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let filetime = (u128::from(since_unix.as_secs() + FILETIME_EPOCH_OFFSET_SECS) * 10_000_000)
        + u128::from(since_unix.subsec_nanos() / 100);
    filter
        .replace(NOW_FILETIME, &filetime.to_string())
        .replace(NOW_GENERALIZED, &generalized(since_unix))
}

fn generalized(since_unix: Duration) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + since_unix;
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The first `{...}` in `filter` that is not a time placeholder, so a config check can name
/// a misspelt one (sent as it is, it would match no entry and refuse everyone).
pub fn unknown_placeholder(filter: &str) -> Option<&str> {
    placeholder_other_than(filter, &[NOW_FILETIME, NOW_GENERALIZED])
}

/// The first `{...}` (or lone `{`) in `filter` that is not one of `known`.
pub fn placeholder_other_than<'f>(filter: &'f str, known: &[&str]) -> Option<&'f str> {
    let mut rest = filter;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        let end = tail.find('}').map_or(tail.len(), |e| e + 1);
        let word = &tail[..end];
        if !known.contains(&word) {
            return Some(word);
        }
        rest = &tail[end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_filetime_and_generalized_time() {
        // 2026-12-03 20:15:07.5 UTC.
        let now = UNIX_EPOCH + Duration::from_millis(1_796_328_907_500);
        assert_eq!(
            fill("(accountExpires>={now_filetime})", now),
            // (1_796_328_907 + 11_644_473_600) * 10^7 + 5_000_000
            "(accountExpires>=134408025075000000)"
        );
        assert_eq!(
            fill("(pwdEndTime>={now_generalized})", now),
            "(pwdEndTime>=20261203201507Z)"
        );
        assert_eq!(fill("(!(x=1))", now), "(!(x=1))");
    }

    #[test]
    fn names_unknown_placeholders() {
        assert_eq!(unknown_placeholder("(a>={now_filetime})"), None);
        assert_eq!(
            unknown_placeholder("(a>={now_filetime})(b>={now})"),
            Some("{now}")
        );
        assert_eq!(unknown_placeholder("(a={user})"), Some("{user}"));
        assert_eq!(
            unknown_placeholder("(a={now_filetime"),
            Some("{now_filetime")
        );
    }
}
