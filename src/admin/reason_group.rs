//! The cause an audit reason gives, for `radmfa audit --count-by reason`: the reason with
//! what varies from one record to the next written as a placeholder. Grouped by the whole
//! text, one cause split into as many rows as records: each lock's `locked until
//! 2026-...`, each `SMS code expired (42 s after sending)`, a refused service account's
//! `rc=49` beside its `rc=49 (not tried again for 5 s)`. The records themselves, and the
//! filters that select them, keep the full text.

/// Parenthesised notes that say when, not why: left out, so the reason groups with the
/// plain form the same cause takes without them.
const WHEN_NOT_WHY: &[&str] = &["(not tried again"];

/// `reason` with its times as `<time>`, its numbers as `N` and its notes of when left out.
pub fn reason_group(reason: &str) -> String {
    let reason = without_notes(reason);
    let bytes = reason.as_bytes();
    let mut out = String::with_capacity(reason.len());
    let mut i = 0;
    while i < reason.len() {
        let standalone = i == 0 || !is_word(bytes[i - 1]);
        if standalone {
            if let Some(len) = time_at(&bytes[i..]) {
                out.push_str("<time>");
                i += len;
                continue;
            }
            let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 && bytes.get(i + digits).is_none_or(|b| !is_word(*b)) {
                out.push('N');
                i += digits;
                continue;
            }
        }
        // A whole character: the reason may hold names in any script.
        let c = reason[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

/// Part of a word a number is not a number of its own in: `rc49`, `HW1`, `x_2`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn without_notes(reason: &str) -> String {
    let mut text = reason.to_string();
    for note in WHEN_NOT_WHY {
        while let Some(at) = text.find(note) {
            let end = text[at..].find(')').map_or(text.len(), |e| at + e + 1);
            let start = if text[..at].ends_with(' ') {
                at - 1
            } else {
                at
            };
            text.replace_range(start..end, "");
        }
    }
    text
}

/// The length of the RFC 3339 time (or bare date) `s` starts with, as `fmt_time` and
/// PostgreSQL write them: `2026-05-01`, then `T10:00:00`, a fraction, `Z` or `+01:00`.
fn time_at(s: &[u8]) -> Option<usize> {
    let shape = |pattern: &[u8], at: usize| {
        s.len() >= at + pattern.len()
            && pattern.iter().zip(&s[at..]).all(|(p, c)| match p {
                b'9' => c.is_ascii_digit(),
                p => p == c,
            })
    };
    if !shape(b"9999-99-99", 0) {
        return None;
    }
    let mut len = 10;
    if shape(b"T99:99:99", len) || shape(b" 99:99:99", len) {
        len += 9;
        if s.get(len) == Some(&b'.') {
            len += 1 + s[len + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        }
        if s.get(len) == Some(&b'Z') {
            len += 1;
        } else if shape(b"+99:99", len) || shape(b"-99:99", len) {
            len += 6;
        }
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::reason_group;

    #[test]
    fn one_cause_is_one_group() {
        for (a, b) in [
            (
                "5 consecutive wrong codes; second factor locked until 2026-05-01T10:00:00Z",
                "5 consecutive wrong codes; second factor locked until 2026-06-11T23:59:01Z",
            ),
            (
                "SMS code expired (42 s after sending)",
                "SMS code expired (301 s after sending)",
            ),
            (
                "directory: service account bind refused: rc=49 (not tried again for 5 s)",
                "directory: service account bind refused: rc=49",
            ),
            (
                "request deadline of 4000 ms exceeded",
                "request deadline of 2500 ms exceeded",
            ),
            (
                "wrong code (it is the token's code for 3 min ahead of this server's clock)",
                "wrong code (it is the token's code for 12 min ahead of this server's clock)",
            ),
        ] {
            assert_eq!(reason_group(a), reason_group(b), "{a:?} / {b:?}");
        }
        assert_eq!(
            reason_group("second factor locked until 2026-05-01T10:00:00.5+02:00; 3 left"),
            "second factor locked until <time>; N left"
        );
        assert_eq!(
            reason_group("directory: rc=49 (not tried again for 5 s); more"),
            "directory: rc=N; more"
        );
    }

    #[test]
    fn different_causes_stay_apart() {
        // Words with digits in them are words; names keep their spelling.
        assert_eq!(
            reason_group("user blocked under the entry's other name \"jdoe2\""),
            "user blocked under the entry's other name \"jdoe2\""
        );
        assert_eq!(reason_group("rc49 ümlaut7 x_2"), "rc49 ümlaut7 x_2");
        assert_ne!(
            reason_group("not a code (4 to 10 digits)"),
            reason_group("not a code (not 6 to 8 digits)")
        );
        assert_eq!(reason_group("wrong code"), "wrong code");
        assert_eq!(reason_group("-"), "-");
    }
}
