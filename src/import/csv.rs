//! CSV token files.
//!
//! Layouts, with or without a header row (blank lines and `#` comments are skipped):
//!
//! - **Azure MFA Server** (the product radmfa replaces): `serial, secret, interval[, user]`,
//!   the secret in Base32, the interval in seconds (TOTP).
//! - **OATH** (privacyIDEA/LinOTP-style exports): `serial, key, type[, digits[,
//!   counter-or-step[, user]]]` with `type` `hotp` or `totp`; the key in hex or Base32.
//! - **With a header**, columns in any order by name, e.g. the Entra layout
//!   `upn,serial number,secret key,time interval,manufacturer,model`. Known names: serial,
//!   secret/key/seed, type, digits, counter, interval/period/step, algorithm/hash,
//!   user/upn/owner, manufacturer, model. An unknown column is an error, not ignored data.

use super::keys::decode_key;
use super::limits::Entries;
use super::{check_token, shown, Entry, FileDefaults, ImportError, ImportedToken, Problem};
use crate::secret::Secret;
use crate::store::{user_key, NewToken, OtpAlgorithm, TokenExtra, TokenKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Serial,
    Secret,
    Type,
    Digits,
    Counter,
    Interval,
    CounterOrStep,
    Algorithm,
    User,
    Manufacturer,
    Model,
}

fn column(name: &str) -> Option<Column> {
    let n: String = name
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    Some(match n.as_str() {
        "serial" | "serialnumber" | "serialno" | "sn" => Column::Serial,
        "secret" | "secretkey" | "key" | "seed" | "otpkey" => Column::Secret,
        "type" | "tokentype" => Column::Type,
        "digits" | "otplen" | "otplength" | "length" => Column::Digits,
        "counter" => Column::Counter,
        "interval" | "timeinterval" | "period" | "step" | "timestep" => Column::Interval,
        "counterorstep" => Column::CounterOrStep,
        "algorithm" | "hash" | "hashlib" => Column::Algorithm,
        "user" | "upn" | "username" | "owner" | "userid" => Column::User,
        "manufacturer" | "vendor" => Column::Manufacturer,
        "model" => Column::Model,
        _ => return None,
    })
}

/// The position of the first header column that means the same as an earlier one.
fn repeated(cols: &[Column]) -> Option<usize> {
    (0..cols.len()).find(|&i| cols[..i].contains(&cols[i]))
}

/// The columns of the positional layouts, decided per row by its third field.
fn positional(fields: &[String]) -> Result<(Vec<Column>, bool), String> {
    let third = fields.get(2).map(|s| s.trim().to_ascii_lowercase());
    match third.as_deref() {
        Some("hotp") | Some("totp") => Ok((
            vec![
                Column::Serial,
                Column::Secret,
                Column::Type,
                Column::Digits,
                Column::CounterOrStep,
                Column::User,
            ],
            false,
        )),
        None | Some("") => Ok((vec![Column::Serial, Column::Secret], true)),
        Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => Ok((
            vec![
                Column::Serial,
                Column::Secret,
                Column::Interval,
                Column::User,
            ],
            true,
        )),
        Some(t) => Err(format!(
            "third column {} is neither a time interval (Azure MFA Server layout) nor hotp/totp (OATH layout)",
            shown(t)
        )),
    }
}

/// One physical line as CSV fields (quotes allowed; token files have no multi-line fields).
fn split_line(line: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_string())?;
    // A lone CR ends a record for the CSV reader, which would drop the rest of the line
    // without a word; `parse` refuses such lines before they get here.
    debug_assert!(!line.contains(&b'\r'));
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut record = ::csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(_) => Ok(record.iter().map(str::to_string).collect()),
        Err(e) => Err(format!("cannot read CSV: {e}")),
    }
}

/// Parses a CSV file; each data row becomes an [`Entry`] naming its line. Lines are split
/// here rather than by the CSV reader, whose positions skip blank lines: the line number in
/// a message must be the one an editor shows. Past the limits of [`Entries`] the file is
/// refused.
pub fn parse(bytes: &[u8], defaults: &FileDefaults) -> Result<Vec<Entry>, ImportError> {
    parse_into(bytes, defaults, Entries::new())
}

pub(crate) fn parse_into(
    bytes: &[u8],
    defaults: &FileDefaults,
    mut out: Entries,
) -> Result<Vec<Entry>, ImportError> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut header: Option<Vec<Column>> = None;
    let mut first = true;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        // Every CR ending the line: Python's csv.writer on Windows, given a file opened
        // without newline='', writes its own CRLF through text mode's, ending rows "\r\r\n".
        let end = raw.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
        let raw = &raw[..end];
        // Before the comment check: a file of old Mac line endings is one "line", and one
        // that starts with a comment would otherwise be skipped whole, importing nothing.
        if raw.contains(&b'\r') {
            let m = "a carriage return inside the line (old Mac line endings?); end lines with \
                     LF or CRLF"
                .to_string();
            // Its serial, from the part before the first CR, keeps its twins out too.
            let head = raw.split(|&b| b == b'\r').next().unwrap_or(raw);
            let serial = split_line(String::from_utf8_lossy(head).as_bytes())
                .ok()
                .and_then(|f| serial_of(&f, header.as_deref()));
            out.push(
                match serial {
                    Some(serial) => Entry::InvalidToken(problem(line, m), serial),
                    None => invalid(line, m),
                },
                line,
            )?;
            continue;
        }
        if raw.iter().all(u8::is_ascii_whitespace) || raw.trim_ascii_start().starts_with(b"#") {
            continue;
        }
        let fields = match split_line(raw) {
            Ok(f) => f,
            Err(m) => {
                // Not UTF-8 (a name in Latin-1, say): its serial, read lossily (serials are
                // ASCII), still keeps a valid row with the same serial out, as any bad row's.
                let lossy = String::from_utf8_lossy(raw).into_owned();
                let serial = split_line(lossy.as_bytes())
                    .ok()
                    .and_then(|f| serial_of(&f, header.as_deref()));
                out.push(
                    match serial {
                        Some(serial) => Entry::InvalidToken(problem(line, m), serial),
                        None => invalid(line, m),
                    },
                    line,
                )?;
                continue;
            }
        };
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        // Before the header check, which a ';'-separated header would not pass either.
        if let Some((m, parts)) = other_separator(&fields) {
            out.push(
                match serial_of(&parts, header.as_deref()) {
                    Some(serial) => Entry::InvalidToken(problem(line, m), serial),
                    None => invalid(line, m),
                },
                line,
            )?;
            continue;
        }
        if std::mem::take(&mut first) && fields.iter().any(|f| column(f).is_some()) {
            match fields
                .iter()
                .map(|f| column(f).ok_or(f))
                .collect::<Result<Vec<_>, _>>()
            {
                // Two columns for one field (`user` and `upn`, `key` and `secret`): which
                // one holds the value is a guess, and a wrong guess seals a name as the seed.
                Ok(cols) if repeated(&cols).is_some() => {
                    let i = repeated(&cols).unwrap_or(0);
                    out.push(
                        invalid(
                            line,
                            format!(
                                "column {} in the header repeats another with the same meaning \
                             (column names are matched loosely: upn and user, key and \
                             secret are one)",
                                shown(&fields[i])
                            ),
                        ),
                        line,
                    )?;
                    return Ok(out.into_vec());
                }
                Ok(cols) if cols.contains(&Column::Serial) && cols.contains(&Column::Secret) => {
                    header = Some(cols)
                }
                Ok(_) => {
                    out.push(
                        invalid(line, "header needs a serial and a secret column".into()),
                        line,
                    )?;
                    return Ok(out.into_vec());
                }
                Err(f) => {
                    out.push(
                        invalid(line, format!("unknown column {} in the header", shown(f))),
                        line,
                    )?;
                    return Ok(out.into_vec());
                }
            }
            continue;
        }
        out.push(
            match row(&fields, header.as_deref(), defaults) {
                Ok((token, extra)) => match check_token(&token, &extra) {
                    Ok(()) => Entry::Token(Box::new(ImportedToken {
                        origin: format!("line {line}"),
                        token,
                        extra,
                    })),
                    Err(m) => Entry::InvalidToken(problem(line, m), token.serial),
                },
                Err(m) => match serial_of(&fields, header.as_deref()) {
                    Some(serial) => Entry::InvalidToken(problem(line, m), serial),
                    None => invalid(line, m),
                },
            },
            line,
        )?;
    }
    Ok(out.into_vec())
}

/// A row read as one field that holds a ';' or a tab: a file whose fields are separated
/// by those (Excel saves "CSV" with ';' where the decimal mark is a comma), which read
/// with commas had every row called "secret is empty". The message does not quote the
/// row, which holds its secret; the parts are for its serial, to keep a twin out.
fn other_separator(fields: &[String]) -> Option<(String, Vec<String>)> {
    let [field] = fields else { return None };
    let (sep, name) = [(';', "';'"), ('\t', "tabs")]
        .into_iter()
        .find(|(c, _)| field.contains(*c))?;
    let parts = field.split(sep).map(|p| p.trim().to_string()).collect();
    Some((
        format!(
            "the fields are separated by {name}, not commas (as spreadsheets save CSV in \
             some locales): save the file as comma-separated CSV"
        ),
        parts,
    ))
}

fn invalid(line: u64, message: String) -> Entry {
    Entry::Invalid(problem(line, message))
}

fn problem(line: u64, message: String) -> Problem {
    Problem {
        origin: format!("line {line}"),
        message,
    }
}

/// The serial of a row that is not a valid token, where one can be read. Without a header
/// it is the first column in every layout, even when the row fits none (a typo in its
/// third column): a valid row with the same serial must stay out of an import that skips
/// bad rows, since which of the two holds the right seed is a guess.
fn serial_of(fields: &[String], header: Option<&[Column]>) -> Option<String> {
    let at = match header {
        Some(h) => h.iter().position(|c| *c == Column::Serial)?,
        None => 0,
    };
    fields.get(at).filter(|s| !s.is_empty()).cloned()
}

fn number<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{what} {} is not a valid number", shown(v)))
}

fn row(
    fields: &[String],
    header: Option<&[Column]>,
    d: &FileDefaults,
) -> Result<(NewToken, TokenExtra), String> {
    let (cols, base32_layout) = match header {
        Some(h) => {
            // Named secret columns are Base32 unless the file carries a type column (OATH).
            (h.to_vec(), !h.contains(&Column::Type))
        }
        None => positional(fields)?,
    };
    if fields.len() > cols.len() {
        return Err(format!(
            "{} columns; this layout has at most {}",
            fields.len(),
            cols.len()
        ));
    }
    let get = |c: Column| {
        cols.iter()
            .position(|x| *x == c)
            .and_then(|i| fields.get(i))
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    };
    let serial = get(Column::Serial).ok_or("serial is empty")?.to_string();
    let kind = match get(Column::Type).map(str::to_ascii_lowercase).as_deref() {
        None | Some("totp") => TokenKind::Totp,
        Some("hotp") => TokenKind::Hotp,
        Some(t) => return Err(format!("type {} is not hotp or totp", shown(t))),
    };
    let secret: Secret = match get(Column::Secret) {
        Some(s) => decode_key(s, d.encoding, base32_layout)?,
        None => return Err("secret is empty".into()),
    };
    let digits = match get(Column::Digits) {
        Some(v) => number("digits", v)?,
        None => d.digits,
    };
    let algorithm = match get(Column::Algorithm) {
        Some(a) => {
            OtpAlgorithm::parse(a.trim_start_matches("hmac-").trim_start_matches("HMAC-"))
                .ok_or_else(|| format!("algorithm {} is not SHA1, SHA256 or SHA512", shown(a)))?
        }
        None => d.algorithm,
    };
    let either = get(Column::CounterOrStep);
    let (mut period, mut counter) = (d.period, 0u64);
    match kind {
        TokenKind::Totp => {
            // A counter says HOTP. Without a type column every row is read as TOTP, and the
            // counter would be dropped without a word.
            if let Some(v) = get(Column::Counter) {
                if !cols.contains(&Column::Type) {
                    return Err(format!(
                        "counter {} but no type column: add one (hotp or totp per row); \
                         without it every row is a TOTP token",
                        shown(v)
                    ));
                }
                if v != "0" {
                    return Err(format!("counter {} given for a TOTP token", shown(v)));
                }
            }
            if let Some(v) = get(Column::Interval).or(either) {
                period = number("time interval", v)?;
            }
        }
        TokenKind::Hotp => {
            if let Some(v) = get(Column::Counter).or(either) {
                counter = number("counter", v)?;
            }
            period = 0;
        }
    }
    let user = get(Column::User).map(user_key);
    let token = NewToken {
        serial,
        user,
        kind,
        algorithm,
        digits,
        period,
        counter,
        secret,
    };
    let extra = TokenExtra {
        manufacturer: get(Column::Manufacturer).map(str::to_string),
        model: get(Column::Model).map(str::to_string),
        ..Default::default()
    };
    Ok((token, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Result<ImportedToken, String>> {
        parse(text.as_bytes(), &FileDefaults::default())
            .unwrap()
            .into_iter()
            .map(|e| match e {
                Entry::Token(t) => Ok(*t),
                Entry::Invalid(p) | Entry::InvalidToken(p, _) | Entry::Ignored(p) => {
                    Err(p.to_string())
                }
            })
            .collect()
    }

    const B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    /// A serial whose second row is bad in a way that fits no layout (a typo in its third
    /// column, an HOTP type misspelt, a stray CR): its valid twin is not imported either,
    /// even when bad rows are skipped.
    #[test]
    fn a_bad_rows_serial_keeps_its_valid_twin_out() {
        for bad in [
            "SN1,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP,3O",
            "SN1,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP,htop,6,0",
            "SN1,JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP,30\r,x",
        ] {
            let text = format!("SN1,{B32},30\n{bad}\nSN2,{B32},30\n");
            let entries = parse(text.as_bytes(), &FileDefaults::default()).unwrap();
            let p = crate::import::plan::plan(
                entries,
                &Default::default(),
                &Default::default(),
                false,
                || {},
            );
            let ready: Vec<&str> = p.ready.iter().map(|t| t.token.serial.as_str()).collect();
            assert_eq!(ready, ["SN2"], "{bad:?}: {:?}", p.problems);
        }
    }
    const HEX: &str = "3132333435363738393031323334353637383930";

    #[test]
    fn a_row_that_is_not_utf8_still_names_its_serial() {
        let text = format!("serial,key,type,user\nX1,{HEX},totp,bob\nX1,{HEX},totp,j\u{fc}rgen\n");
        let mut bytes = text.into_bytes();
        // j\xfcrgen in Latin-1: the UTF-8 ü (C3 BC) becomes the single byte FC.
        let at = bytes.windows(2).position(|w| w == [0xC3, 0xBC]).unwrap();
        bytes.splice(at..at + 2, [0xFC]);
        let entries = parse(&bytes, &FileDefaults::default()).unwrap();
        assert!(
            entries
                .iter()
                .any(|e| matches!(e, Entry::InvalidToken(p, s) if s == "X1" && p.to_string().contains("line 3"))),
            "the bad row is X1's"
        );
    }

    #[test]
    fn azure_layout_with_and_without_user() {
        let got = tokens(&format!(
            "# comment\nSN1,{B32},30\n\nSN2, {B32} ,60,Alice\n"
        ));
        assert_eq!(got.len(), 2);
        let a = got[0].as_ref().unwrap();
        assert_eq!(a.origin, "line 2");
        assert_eq!(a.token.secret.expose(), b"12345678901234567890");
        assert_eq!(
            (a.token.kind, a.token.period, a.token.user.as_deref()),
            (TokenKind::Totp, 30, None)
        );
        let b = got[1].as_ref().unwrap();
        assert_eq!(
            (b.token.period, b.token.user.as_deref()),
            (60, Some("alice"))
        );
        assert_eq!(b.origin, "line 4");
    }

    /// A lone CR is not a line end here: a file of old Mac line endings is one bad line,
    /// not one token that seems to be the whole file, and a stray CR inside a row does
    /// not cut its later columns off.
    #[test]
    fn a_carriage_return_inside_a_line_is_refused() {
        let got = tokens(&format!("SN1,{B32},30\rSN2,{B32},30\r"));
        assert_eq!(got.len(), 1, "{got:?}");
        let commented = tokens(&format!("# tokens\rSN1,{B32},30\rSN2,{B32},30\r"));
        assert!(
            commented.len() == 1 && commented[0].is_err(),
            "a comment first does not hide it: {commented:?}"
        );
        let err = got[0].as_ref().unwrap_err();
        assert!(
            err.contains("line 1") && err.contains("carriage return"),
            "{err}"
        );
        let got = tokens(&format!("SN1,{B32}\r,60,alice\r\nSN2,{B32},30\r\n"));
        assert!(
            got[0].as_ref().unwrap_err().contains("carriage return"),
            "{got:?}"
        );
        assert_eq!(got[1].as_ref().unwrap().token.serial, "SN2", "CRLF is fine");
    }

    /// Rows ending "\r\r\n" (Python's csv.writer on Windows without newline=''): each
    /// is a row, named by its own line; no CR is left inside them.
    #[test]
    fn rows_ending_in_two_carriage_returns_are_read() {
        let got = tokens(&format!("SN1,{B32},30\r\r\nSN2,{B32},30,alice\r\r\n"));
        let origins: Vec<&str> = got
            .iter()
            .map(|t| t.as_ref().map(|t| t.origin.as_str()))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(origins, ["line 1", "line 2"]);
        assert_eq!(
            got[1].as_ref().unwrap().token.user.as_deref(),
            Some("alice")
        );
    }

    /// Fields separated by ';' (Excel in a European locale) or tabs: each row says so,
    /// without quoting the row (its secret), and keeps a valid twin of its serial out.
    #[test]
    fn other_separators_are_named_without_the_secret() {
        for (sep, name) in [(";", "';'"), ("\t", "tabs")] {
            let text =
                format!("serial{sep}secret{sep}interval\nSN1{sep}{B32}{sep}30\nSN1,{B32},30\n");
            let got = tokens(&text);
            let want = format!(
                "the fields are separated by {name}, not commas (as spreadsheets save CSV in \
                 some locales): save the file as comma-separated CSV"
            );
            assert_eq!(got[0].as_ref().unwrap_err(), &format!("line 1: {want}"));
            assert_eq!(got[1].as_ref().unwrap_err(), &format!("line 2: {want}"));
            let entries = parse(text.as_bytes(), &FileDefaults::default()).unwrap();
            assert!(
                matches!(&entries[1], Entry::InvalidToken(_, s) if s == "SN1"),
                "{:?}",
                entries[1]
            );
        }
        // One field with neither is still a row with no secret.
        let got = tokens("SN1\n");
        assert_eq!(got[0].as_ref().unwrap_err(), "line 1: secret is empty");
    }

    #[test]
    fn a_secret_in_the_wrong_column_is_not_quoted() {
        // An Entra export without its header row: upn, serial, secret, interval, ...
        let got = tokens(&format!("alice@example.org,SN9,{B32},30\n"));
        let err = got[0].as_ref().unwrap_err();
        assert!(
            !err.contains(B32) && !err.contains(&B32.to_lowercase()),
            "{err}"
        );
        assert!(err.contains("32-character value, not shown"), "{err}");
        // A header that names a column we do not know, with a secret in it.
        let got = tokens(&format!("serial,secret,{B32}\nA,B,C\n"));
        let err = got[0].as_ref().unwrap_err();
        assert!(!err.contains(B32), "{err}");
        // Short values are still quoted, to show what was wrong.
        let got = tokens(&format!("SN1,{B32},thirty\n"));
        assert!(
            got[0].as_ref().unwrap_err().contains("\"thirty\""),
            "{got:?}"
        );
    }

    #[test]
    fn the_key_check_serial_is_refused_by_line() {
        let got = tokens(&format!("SN1,{B32},30\nradmfa:key_check,{B32},30\n"));
        assert!(got[0].is_ok());
        let err = got[1].as_ref().unwrap_err();
        assert!(
            err.starts_with("line 2:") && err.contains("reserved"),
            "{err}"
        );
    }

    #[test]
    fn oath_layout_hotp_and_totp() {
        let got = tokens(&format!("H1,{HEX},hotp,8,42,bob\nT1,{HEX},totp,6,60\n"));
        let h = got[0].as_ref().unwrap();
        assert_eq!(
            (h.token.kind, h.token.digits, h.token.counter),
            (TokenKind::Hotp, 8, 42)
        );
        assert_eq!(h.token.user.as_deref(), Some("bob"));
        assert_eq!(h.token.secret.expose(), b"12345678901234567890");
        let t = got[1].as_ref().unwrap();
        assert_eq!((t.token.kind, t.token.period), (TokenKind::Totp, 60));
    }

    #[test]
    fn header_in_any_order_entra_style() {
        let got = tokens(&format!(
            "upn,serial number,secret key,time interval,manufacturer,model\n\
             alice@example.org,SN9,{B32},30,Contoso,Hardware Key\n"
        ));
        let t = got[0].as_ref().unwrap();
        assert_eq!(t.token.serial, "SN9");
        assert_eq!(t.token.user.as_deref(), Some("alice@example.org"));
        assert_eq!(t.extra.manufacturer.as_deref(), Some("Contoso"));
        assert_eq!(t.origin, "line 2");
        let bad = tokens("serial,secret,colour\nA,B,C\n");
        assert!(bad[0].as_ref().unwrap_err().contains("colour"), "{bad:?}");
    }

    #[test]
    fn a_header_naming_one_field_twice_is_refused() {
        for header in ["serial,secret,user,upn", "serial,key,secret"] {
            let got = tokens(&format!("{header}\nSN1,{B32},{B32},x\n"));
            assert_eq!(got.len(), 1, "{got:?}");
            let e = got[0].as_ref().unwrap_err();
            assert!(
                e.starts_with("line 1: column ") && e.contains("repeats another"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_model_or_manufacturer_with_control_characters_is_refused() {
        let got = tokens(&format!(
            "serial,secret,interval,model\nSN1,{B32},30,\"x\x1b[2J\x1b]0;pwned\x07\"\n"
        ));
        let e = got[0].as_ref().unwrap_err();
        assert!(e.starts_with("line 2: model "), "{e}");
        assert!(
            !e.contains('\x1b'),
            "the escape reaches the terminal: {e:?}"
        );
        let long = "m".repeat(129);
        let got = tokens(&format!("serial,secret,manufacturer\nSN1,{B32},{long}\n"));
        assert!(
            got[0].as_ref().unwrap_err().contains("manufacturer"),
            "{got:?}"
        );
        let got = tokens(&format!("serial,secret,manufacturer\nSN1,{B32},Yubico\n"));
        assert!(got[0].is_ok(), "{got:?}");
    }

    #[test]
    fn a_long_serial_is_not_quoted_in_its_error() {
        let seed = "ab".repeat(100);
        let got = tokens(&format!("{seed},{B32},30\n"));
        let e = got[0].as_ref().unwrap_err();
        assert!(
            e.contains("serial (a 200-character value, not shown)"),
            "{e}"
        );
        assert!(!e.contains(&seed));
    }

    #[test]
    fn a_counter_needs_a_type_column() {
        let got = tokens(&format!("serial,secret,counter\nH1,{B32},7\n"));
        let e = got[0].as_ref().unwrap_err();
        assert!(
            e.starts_with("line 2: counter \"7\" but no type column"),
            "{e}"
        );
        let got = tokens(&format!(
            "serial,secret,type,counter\nT1,{HEX},totp,0\nT2,{HEX},totp,5\nH1,{HEX},hotp,5\n"
        ));
        assert!(got[0].is_ok(), "{:?}", got[0]);
        assert_eq!(
            got[1].as_ref().unwrap_err(),
            "line 3: counter \"5\" given for a TOTP token"
        );
        assert_eq!(got[2].as_ref().unwrap().token.counter, 5);
    }

    #[test]
    fn bad_rows_name_their_line() {
        let got = tokens(&format!(
            "A,{B32},30\nB,GEZDGNBVGY3TQOJ1,30\nC,{B32},30\nD,{B32},7\nE,{B32},hotpx\n"
        ));
        assert!(got[0].is_ok());
        let e = got[1].as_ref().unwrap_err();
        assert!(e.starts_with("line 2: ") && e.contains("Base32"), "{e}");
        assert!(got[2].is_ok());
        assert!(
            got[3]
                .as_ref()
                .unwrap_err()
                .starts_with("line 4: time step"),
            "{got:?}"
        );
        assert!(
            got[4]
                .as_ref()
                .unwrap_err()
                .starts_with("line 5: third column"),
            "{got:?}"
        );
    }

    #[test]
    fn garbage_does_not_panic_and_imports_nothing() {
        for input in [
            "\"",
            "a,\"b",
            ",,,,,,,,,,,,",
            "\u{0}\u{1}",
            "serial,secret\n",
            "x\n\"\"\"\n",
        ] {
            let got = tokens(input);
            assert!(got.iter().all(Result::is_err), "{input:?}: {got:?}");
        }
        // A header alone is an empty file, not an error.
        assert!(tokens("serial,secret\n").is_empty());
    }
}
