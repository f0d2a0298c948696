//! What the CLI does beyond parsing: serving, user and token administration, audit queries.

pub mod app_passwords;
pub mod audit;
pub mod audit_follow;
pub mod backup;
pub mod bypass;
pub mod check;
mod check_delivery;
mod check_groups;
mod check_integrity;
mod check_refusal;
mod clock_watch;
mod directory_name;
mod http_listener;
mod http_slots;
mod ldap_failover;
pub mod migrate;
pub mod output;
pub mod phone;
mod reason_group;
#[cfg(unix)]
pub mod reload;
pub mod review;
pub mod review_file;
mod review_listen;
pub mod review_secret_files;
mod send_limits;
pub mod serve;
pub mod token_import;
mod token_list;
mod token_replace;
pub mod tokens;
pub mod users;

use std::borrow::Cow;
use std::sync::OnceLock;

/// Who is running this command, for the admin audit records: the account ("root"), and
/// under sudo the account that ran sudo ("root via sudo from alice"). The sudo part comes
/// from SUDO_USER, which sudo sets and a root shell could fake; it names the person, the
/// account is what the kernel says.
pub fn actor() -> &'static str {
    static ACTOR: OnceLock<String> = OnceLock::new();
    ACTOR.get_or_init(|| {
        use nix::unistd::{Uid, User};
        let uid = Uid::current();
        let account = User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| u.name);
        let via = std::env::var("SUDO_USER")
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 64 && *s != account);
        let who = match via {
            Some(s) => format!("{account} via sudo from {s}"),
            None => account,
        };
        printable(&who).into_owned()
    })
}

/// A user name given to a command that stores something under it: no empty, over-long
/// (RADIUS carries at most 253 bytes) or control-character names reach the store.
pub fn user_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || s.len() > 253 || s.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is empty, longer than 253 bytes or has control characters"
        ));
    }
    Ok(s.to_string())
}

/// JSON for a terminal: what [`printable`] escapes in a table is written as `\uXXXX` (still
/// the same JSON to a parser). serde_json leaves U+007F-U+009F (C1 controls: U+009B is a
/// CSI to xterm), invisible and bidirectional format characters as they are.
pub fn json_printable(json: String) -> String {
    // Below U+0020 serde_json escapes inside strings itself; what is left there is the
    // layout of pretty output (newlines, indentation).
    let hidden = |c: char| c >= '\u{20}' && hides(c);
    if !json.chars().any(hidden) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if hidden(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How many terminal cells `s` takes: a fullwidth (CJK) character two, a combining mark
/// none. The tables pad by this, not by characters: `{:<20}` counts characters, so a
/// fullwidth or accented name pushed every column after it out of line.
pub fn cells(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` followed by spaces up to `width` terminal cells (see [`cells`]); as `{:<width$}`,
/// a longer value is left whole.
pub fn pad(s: &str, width: usize) -> String {
    let mut out = String::with_capacity(s.len() + width);
    out.push_str(s);
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(cells(s))));
    out
}

/// A value for a terminal: control characters written as escapes. User names, NAS names and
/// reasons come from the network (a User-Name may hold ESC sequences that would move the
/// cursor or erase lines and so hide records from the admin reading them).
/// Format characters are escaped too: invisible ones (`al\u{200b}ice` would pass for
/// alice) and bidirectional overrides (which reorder what follows them on the line).
/// A name or serial as one shell word, for a command a message suggests: `radmfa user
/// reset jean paul`, pasted as printed, named two users (clap: "unexpected argument
/// 'paul'"), and `o'brien` opened a quote. Escaped as [`printable`] first.
pub fn shell_arg(s: &str) -> String {
    let shown = printable(s);
    match shlex::try_quote(&shown) {
        Ok(quoted) => quoted.into_owned(),
        // Only a NUL byte, which `printable` has escaped already.
        Err(_) => shown.into_owned(),
    }
}

pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hides) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if hides(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Control characters, the format characters (Unicode category Cf, and the line and
/// paragraph separators) that are invisible or reorder text, and the other characters that
/// print as nothing (Hangul fillers, variation selectors). Listed by hand: the standard
/// library has no general category, and this short list is stable.
pub(crate) fn hides(c: char) -> bool {
    c.is_control()
        // Everything a login's User-Name is refused for (the combining grapheme joiner
        // U+034F among them: `ali\u{34f}ce` showed as alice in `audit` and `user list`).
        || crate::pipeline::invisible_format(c)
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{08E2}'
                | '\u{0890}'..='\u{0891}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0100}'..='\u{E01EF}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                // The Braille blank prints as a space of one column: a User-Name padded
                // with it laid out fake columns ("root  accept  totp") in the audit table.
                | '\u{2800}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_for_a_terminal_escapes_what_tables_escape_and_parses_the_same() {
        use super::{hides, json_printable};
        let v = serde_json::json!({"user": "bob\u{202e}tpecca\u{9b}2J\u{200b}", "n": "plain"});
        let raw = serde_json::to_string(&v).unwrap();
        assert!(
            raw.contains('\u{9b}'),
            "serde_json leaves C1 controls: {raw}"
        );
        let shown = json_printable(raw);
        assert!(!shown.chars().any(hides), "{shown}");
        // Pretty output keeps its layout.
        let pretty = json_printable(serde_json::to_string_pretty(&v).unwrap());
        assert!(pretty.contains('\n'), "{pretty}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&pretty).unwrap(),
            v
        );
        assert!(
            shown.contains("\\u202e") && shown.contains("\\u009b"),
            "{shown}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&shown).unwrap(),
            v
        );
        // What a login's User-Name is refused for is escaped too (the combining grapheme
        // joiner showed `ali\u{34f}ce` as alice), and the Braille blank that laid out fake
        // columns in the audit table.
        for c in ['\u{34f}', '\u{1806}', '\u{2800}'] {
            assert!(hides(c), "{c:?}");
            let shown = super::printable(&format!("ali{c}ce")).into_owned();
            assert_eq!(shown, format!("ali{}ce", c.escape_default()));
        }
        // Outside the BMP: a surrogate pair (a tag character).
        let tag = serde_json::json!("a\u{E0041}");
        let shown = json_printable(serde_json::to_string(&tag).unwrap());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&shown).unwrap(),
            tag
        );
    }

    #[test]
    fn invisible_and_reordering_characters_are_escaped() {
        assert_eq!(super::printable("al\u{200b}ice"), "al\\u{200b}ice");
        assert_eq!(
            super::printable("x\u{202e}cba\u{2069}\u{feff}"),
            "x\\u{202e}cba\\u{2069}\\u{feff}"
        );
        assert_eq!(
            super::printable("a\u{3164}b\u{fe0f}"),
            "a\\u{3164}b\\u{fe0f}"
        );
        assert_eq!(super::printable("Jürgen Ñandú"), "Jürgen Ñandú");
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(super::printable("alice"), "alice");
        assert_eq!(
            super::printable("x\u{1b}[2Ky\nz\u{9b}"),
            "x\\u{1b}[2Ky\\nz\\u{9b}"
        );
    }
}

/// A command that refuses, changing nothing, for a reason the admin can act on: exits 1,
/// not 2 like an error (docs/operations.md, "Exit status"). Returned where the refusal is
/// found deep in a command, as `Err(Refused(..).into())`.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// An error and its causes joined by ": ", as `{:#}` prints them, less a cause the text so
/// far already ends with. sqlx's database error says "error returned from database: X" and
/// has X as its source, so `{:#}` printed the server's message twice ("permission denied
/// for sequence …: permission denied for sequence …"). SQLite's "database is locked" gets
/// what it means here: the bare words were all an admin saw while a large import held the
/// store (review).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    if out.contains("database is locked") {
        out.push_str(&format!(
            " (another writer held the store for more than {} s: a large `token import`, \
             say, or a `sqlite3` shell left in a transaction; logins wait for it too): try \
             again once it is done",
            crate::store::sqlite::BUSY_TIMEOUT.as_secs()
        ));
    }
    out
}

#[cfg(test)]
mod error_text_tests {
    /// As sqlx's database error: its message ends with its source's.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error returned from database: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_its_parent_already_says_is_said_once() {
        let denied = std::io::Error::other("permission denied for sequence tokens_id_seq");
        let e = anyhow::Error::new(Repeats(denied)).context("copying");
        assert_eq!(
            super::error_text(&e),
            "copying: error returned from database: permission denied for sequence \
             tokens_id_seq"
        );
        // Causes that differ are all kept, as `{:#}` keeps them.
        let e = anyhow::anyhow!("no such file").context("store.key_file /x");
        assert_eq!(super::error_text(&e), format!("{e:#}"));
    }
}
