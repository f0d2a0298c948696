//! From parsed entries to what gets stored: apply the `serial,user` mapping file, refuse
//! duplicate serials (in the file, and in the store unless replacing), and collect every
//! problem with where it is.

use std::collections::{HashMap, HashSet};

use super::{Entry, ImportedToken, Problem};
// Serials are shown as `token list` shows them: one holding a right-to-left override or a
// control character would otherwise reorder or rewrite the terminal line of its problem.
use crate::admin::printable;
use crate::store::user_key;

#[derive(Debug, Default)]
pub struct Plan {
    pub ready: Vec<ImportedToken>,
    /// Rows that are wrong: with all-or-nothing (the default) any of them stops the import.
    pub problems: Vec<Problem>,
    /// Not tokens (PSKC PIN keys) and rows the same as another: reported only.
    pub ignored: Vec<Problem>,
    /// Of `ignored`, the keys left out for not being HOTP or TOTP.
    pub left_out: usize,
    /// About tokens that are imported: reported only.
    pub notes: Vec<Problem>,
}

/// Whether a map file's first line is a header (`serial,user`, `Serial Number,UPN`, …).
fn is_map_header(line: &str) -> bool {
    let Some((serial, user)) = line.split_once(',') else {
        return false;
    };
    let name = |s: &str| s.trim().trim_matches('"').to_ascii_lowercase();
    matches!(
        name(serial).as_str(),
        "serial" | "serial number" | "serialnumber" | "sn"
    ) && matches!(
        name(user).as_str(),
        "user" | "username" | "user name" | "upn" | "owner" | "login"
    )
}

/// How a map-file problem's origin starts: the import's summary counts those apart from
/// the file's own invalid rows (a map line naming no serial in the file skips no token).
pub const MAP_LINE: &str = "map line";

/// Reads a mapping file: `serial,user` per line; blank lines and `#` comments skipped,
/// and a header row.
pub fn read_map(text: &str) -> Result<HashMap<String, (String, usize)>, Problem> {
    let mut map = HashMap::new();
    // Spreadsheets save "CSV UTF-8" with a byte order mark, which `trim` leaves on the
    // first serial.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        // A header row, as a spreadsheet saves one and the import files may have: it was
        // read as a serial "serial" that is not in the import file.
        if std::mem::take(&mut first) && is_map_header(l) {
            continue;
        }
        let problem = |message: String| Problem {
            origin: format!("map line {}", i + 1),
            message,
        };
        // A bare CR ends no line here: a file saved with old Mac line ends would be one
        // line, its first serial given to a user named after the rest of the file.
        if l.contains('\r') {
            return Err(problem(
                "has a carriage return inside it (old Mac line ends?): save the file with \
                 LF or CRLF line ends"
                    .into(),
            ));
        }
        let (serial, user) = l
            .split_once(',')
            .ok_or_else(|| problem("expected serial,user".into()))?;
        // Exactly two fields: a spreadsheet's extra column ("SN1,alice," or a full name
        // after it) would otherwise become part of the user name, and the token would go to
        // a user who does not exist.
        if user.contains([',', '"']) {
            return Err(problem(
                "expected serial,user: more than two fields, or a quote (a user name has no \
                 comma or quote)"
                    .into(),
            ));
        }
        let (serial, user) = (serial.trim(), user_key(user));
        if serial.is_empty() || user.is_empty() {
            return Err(problem("expected serial,user".into()));
        }
        if user.len() > 253 || user.chars().any(super::unprintable) {
            return Err(problem(format!(
                "user {user:?} is longer than 253 bytes or has control or invisible characters"
            )));
        }
        if map.insert(serial.to_string(), (user, i + 1)).is_some() {
            return Err(problem(format!("serial {serial} is mapped twice")));
        }
    }
    Ok(map)
}

/// Why a token's validity dates (PSKC StartDate and ExpiryDate) leave it no time to be
/// used at or after `now`, if they do.
fn never_valid(extra: &crate::store::TokenExtra, now: i64) -> Option<String> {
    let until = extra.valid_until?;
    let shown = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| t.to_string())
    };
    if let Some(from) = extra.valid_from.filter(|&from| until <= from) {
        return Some(format!(
            "ExpiryDate {} is not after its StartDate {}",
            shown(until),
            shown(from)
        ));
    }
    (until <= now).then(|| format!("ExpiryDate {} is past", shown(until)))
}

/// Where a serial appears again: the first few places and how many more. All of them
/// were kept, and a file of one serial on a million rows held (and printed) them all.
#[derive(Debug, Default)]
struct Origins {
    first: Vec<String>,
    more: usize,
}

/// Places named per serial; the rest are counted.
const SHOW_ORIGINS: usize = 5;

impl Origins {
    fn add(&mut self, origin: &str) {
        if self.first.len() < SHOW_ORIGINS {
            self.first.push(origin.to_string());
        } else {
            self.more += 1;
        }
    }

    fn merge(&mut self, other: Origins) {
        for o in &other.first {
            self.add(o);
        }
        self.more += other.more;
    }
}

impl std::fmt::Display for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.first.join(", "))?;
        if self.more > 0 {
            write!(f, " and {} more", self.more)?;
        }
        Ok(())
    }
}

/// Two entries that are one token: every field the file gave is the same.
fn same_token(a: &ImportedToken, b: &ImportedToken) -> bool {
    let (x, y) = (&a.token, &b.token);
    x.serial == y.serial
        && x.user == y.user
        && x.kind == y.kind
        && x.algorithm == y.algorithm
        && x.digits == y.digits
        && x.period == y.period
        && x.counter == y.counter
        && x.secret == y.secret
        && a.extra == b.extra
}

pub fn plan(
    entries: Vec<Entry>,
    map: &HashMap<String, (String, usize)>,
    existing: &HashSet<String>,
    replace: bool,
    mut tick: impl FnMut(),
) -> Plan {
    let mut out = Plan::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Serial → its first valid entry, as the file has it (before the map).
    let mut seen: HashMap<String, ImportedToken> = HashMap::new();
    // Serials the file has more than once: which of its seeds is right is not known, so none
    // of them is imported (with --skip-invalid either).
    let mut repeated: HashMap<String, Origins> = HashMap::new();
    // Serials of rows that are not valid tokens, and where: a valid row with one of them
    // is not imported either, with --skip-invalid too (the bad row may be the one meant).
    let mut refused: HashMap<String, Origins> = HashMap::new();
    // Entries the same as their serial's first, with the note for each: shown unless the
    // serial is refused after all (a third entry differs), when the first's problem says
    // why and a note that it was read would be wrong.
    let mut twins: Vec<(String, Problem)> = Vec::new();
    for entry in entries {
        tick();
        let mut t = match entry {
            Entry::Token(t) => *t,
            Entry::Invalid(p) => {
                out.problems.push(p);
                continue;
            }
            Entry::InvalidToken(p, serial) => {
                refused.entry(serial).or_default().add(&p.origin);
                out.problems.push(p);
                continue;
            }
            Entry::Ignored(p) => {
                out.ignored.push(p);
                out.left_out += 1;
                continue;
            }
            Entry::Note(p) => {
                out.notes.push(p);
                continue;
            }
        };
        // A token whose validity has ended, or never begins, could never log in (the
        // verifier refuses it outside its dates): a row to refuse, not to store silently.
        // Noted under its serial (so a twin of it is held back too) and as a problem.
        let mut refuse = |by: &mut HashMap<String, Origins>, message: String| {
            by.entry(t.token.serial.clone()).or_default().add(&t.origin);
            out.problems.push(Problem {
                origin: t.origin.clone(),
                message,
            });
        };
        if let Some(why) = never_valid(&t.extra, now) {
            // A PSKC origin already names the serial ("KeyPackage 1 (line 3, serial X)"):
            // said again it read "…, serial X): serial X: ExpiryDate …".
            let serial = printable(&t.token.serial);
            let whose = if t.origin.contains(&format!("serial {serial})")) {
                String::new()
            } else {
                format!("serial {serial}: ")
            };
            refuse(
                &mut refused,
                format!("{whose}{why}, so it could never log in"),
            );
            continue;
        }
        if let Some(first) = seen.get(&t.token.serial) {
            let serial = printable(&t.token.serial);
            // A list pasted twice: one token, not two seeds to choose between.
            if same_token(first, &t) {
                let message = format!(
                    "serial {serial} is the same as at {} in every field: one token, read once",
                    first.origin
                );
                let origin = t.origin;
                twins.push((t.token.serial, Problem { origin, message }));
                continue;
            }
            let first = &first.origin;
            refuse(
                &mut repeated,
                format!("serial {serial} appears again (first at {first})"),
            );
            continue;
        }
        seen.insert(t.token.serial.clone(), t.clone());
        if existing.contains(&t.token.serial) && !replace {
            out.problems.push(Problem {
                origin: t.origin,
                message: format!(
                    "serial {} is already in the inventory (use --replace to overwrite it)",
                    printable(&t.token.serial)
                ),
            });
            continue;
        }
        if let Some((user, _)) = map.get(&t.token.serial) {
            t.token.user = Some(user.clone());
            // The admin named the owner: the file's DN no longer says who it is.
            t.owner_dn = None;
        }
        out.ready.push(t);
    }
    for (serial, at) in refused {
        repeated.entry(serial).or_default().merge(at);
    }
    let twins = twins.into_iter().filter(|(s, _)| !repeated.contains_key(s));
    out.ignored.extend(twins.map(|(_, note)| note));
    if !repeated.is_empty() {
        let (keep, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut out.ready)
            .into_iter()
            .partition(|t| !repeated.contains_key(&t.token.serial));
        out.ready = keep;
        for t in dropped {
            let again = &repeated[&t.token.serial];
            out.problems.push(Problem {
                origin: t.origin,
                message: format!(
                    "serial {} appears again at {again}; which seed is right is not known, \
                     so none is imported",
                    printable(&t.token.serial)
                ),
            });
        }
    }
    for (serial, (_, line)) in map {
        // A serial whose row was refused is in the file: that row's problem says why.
        if !seen.contains_key(serial) && !repeated.contains_key(serial) {
            out.problems.push(Problem {
                origin: format!("{MAP_LINE} {line}"),
                message: format!("serial {} is not in the import file", printable(serial)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{csv, FileDefaults};

    /// The plan for CSV `text` against an empty store, nothing replaced.
    fn plan_csv(text: &str) -> Plan {
        let entries = csv::parse(text.as_bytes(), &FileDefaults::default()).unwrap();
        plan(
            entries,
            &Default::default(),
            &Default::default(),
            false,
            || {},
        )
    }

    /// A map line that is not exactly serial,user is refused, naming the line: old Mac
    /// line ends (one line for the whole file) and a spreadsheet's extra column gave the
    /// token to a user named after the rest of the line.
    #[test]
    fn a_map_line_is_exactly_serial_and_user() {
        let refused = |text: &str| read_map(text).unwrap_err();
        let e = refused("SN1,alice\rSN2,bob\rSN3,carol\r");
        assert_eq!(e.origin, "map line 1");
        assert!(e.message.contains("carriage return"), "{}", e.message);
        for (text, line) in [
            ("SN1,alice,\n", "map line 1"),
            ("SN0,zed\nSN1,alice,Alice Smith\n", "map line 2"),
            ("SN1,\"alice\"\n", "map line 1"),
        ] {
            let e = refused(text);
            assert_eq!(e.origin, line, "{text:?}");
            assert!(e.message.contains("more than two fields"), "{}", e.message);
        }
        let ok = read_map("\u{feff}SN1, Alice \r\n# comment\nSN2,bob\n").unwrap();
        assert_eq!(ok["SN1"], ("alice".to_string(), 1));
        assert_eq!(ok["SN2"], ("bob".to_string(), 3));
        // A header row is skipped (it was "serial serial is not in the import file"); only
        // the first line may be one.
        let ok = read_map("# map\nSerial,User\nSN1,alice\n").unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok["SN1"], ("alice".to_string(), 3));
        let ok = read_map("SN1,alice\nserial,user\n").unwrap();
        assert_eq!(ok.len(), 2, "a later line is a row");
    }

    /// Validity dates that leave a token no time to log in: past, or ending before they
    /// start. Dates ahead, or none, pass.
    #[test]
    fn tokens_that_could_never_log_in_are_named() {
        let extra = |from: Option<i64>, until: Option<i64>| crate::store::TokenExtra {
            valid_from: from,
            valid_until: until,
            ..Default::default()
        };
        let now = 1_800_000_000;
        assert_eq!(
            never_valid(&extra(None, Some(now - 1)), now).as_deref(),
            Some("ExpiryDate 2027-01-15T07:59:59Z is past")
        );
        assert!(never_valid(&extra(Some(now + 100), Some(now + 50)), now)
            .unwrap()
            .contains("is not after its StartDate"));
        assert_eq!(
            never_valid(&extra(Some(now - 100), Some(now + 50)), now),
            None
        );
        assert_eq!(never_valid(&extra(Some(now + 100), None), now), None);
    }

    /// A serial with a right-to-left override, on two rows: its problems show it escaped.
    #[test]
    fn serials_in_problems_are_escaped() {
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let p = plan_csv(&format!("SN\u{202e}1,{b32},30\nSN\u{202e}1,{b32},60\n"));
        assert_eq!(p.problems.len(), 2);
        for pr in &p.problems {
            assert!(
                pr.message.contains("SN\\u{202e}1") && !pr.message.contains('\u{202e}'),
                "{pr}"
            );
        }
    }

    /// A serial on many rows: the problem of its first row names the first few others and
    /// counts the rest, instead of listing (and holding) every one.
    #[test]
    fn a_serial_repeated_on_many_rows_names_a_few_of_them() {
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let rows: String = (0..100)
            .map(|i| format!("SN1,{b32},{}\n", 10 + i))
            .collect();
        let p = plan_csv(&rows);
        assert!(p.ready.is_empty());
        let first = p.problems.iter().find(|p| p.origin == "line 1").unwrap();
        assert_eq!(
            first.message,
            "serial SN1 appears again at line 2, line 3, line 4, line 5, line 6 and 94 more; \
             which seed is right is not known, so none is imported"
        );
    }

    /// A list pasted twice: rows the same in every field are one token, read once with a
    /// note. Twins that differ in anything (here the owner) are still all refused, and the
    /// pasted copy gets no note saying it was read.
    #[test]
    fn rows_the_same_in_every_field_are_taken_once() {
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let list = format!("SN1,{b32},30,alice\nSN2,{b32},60\n");
        let p = plan_csv(&list.repeat(2));
        let ready: Vec<&str> = p.ready.iter().map(|t| t.origin.as_str()).collect();
        assert_eq!(ready, ["line 1", "line 2"], "{:?}", p.problems);
        let notes: Vec<String> = p.ignored.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            notes,
            [
                "line 3: serial SN1 is the same as at line 1 in every field: one token, read \
                 once",
                "line 4: serial SN2 is the same as at line 2 in every field: one token, read \
                 once",
            ]
        );
        let p = plan_csv(&format!("{list}{list}SN1,{b32},30,bob\n"));
        let ready: Vec<&str> = p.ready.iter().map(|t| t.token.serial.as_str()).collect();
        assert_eq!(ready, ["SN2"]);
        // SN1's copy on line 3 is not called read: SN1 is refused.
        let notes: Vec<String> = p.ignored.iter().map(|p| p.to_string()).collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("line 4: serial SN2"), "{notes:?}");
        let problems: Vec<String> = p.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            problems,
            [
                "line 5: serial SN1 appears again (first at line 1)",
                "line 1: serial SN1 appears again at line 5; which seed is right is not \
                 known, so none is imported",
            ]
        );
    }

    /// A map line for a serial whose row is refused: the row's problem is the one to fix; the
    /// map line is not also called a serial "not in the import file".
    #[test]
    fn a_map_line_for_a_refused_row_is_not_called_missing() {
        let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let text = format!("SN1,not-base32!,30\nSN2,{b32},30\n");
        let entries = csv::parse(text.as_bytes(), &FileDefaults::default()).unwrap();
        let map: HashMap<String, (String, usize)> = [
            ("SN1".to_string(), ("alice".to_string(), 1)),
            ("SN3".to_string(), ("bob".to_string(), 2)),
        ]
        .into();
        let p = plan(entries, &map, &Default::default(), false, || {});
        let said: Vec<String> = p.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said.iter().any(|p| p.starts_with("line 1")), "{said:?}");
        assert!(
            said.iter()
                .any(|p| p.contains("map line 2") && p.contains("SN3 is not in the import file")),
            "{said:?}"
        );
    }
}
