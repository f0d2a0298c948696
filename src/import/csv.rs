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
        // response_length: python-pskc's pskc2csv.
        "digits" | "otplen" | "otplength" | "length" | "responselength" => Column::Digits,
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

/// A header cell or a named value (an algorithm, a type) as an error names it: in full
/// where it is a name ("Email Address", `response_length`, a PSKC URI), hidden where it
/// could be a seed (a first row taken for a header because one of its fields is also a
/// column's name, or columns swapped).
fn shown_name(cell: &str) -> String {
    if cell.chars().count() <= 64 && !crate::import::looks_like_a_key(cell) {
        format!("{cell:?}")
    } else {
        shown(cell)
    }
}

/// PSKC's algorithm URIs (RFC 6030 §10.1), which python-pskc's pskc2csv writes in its
/// `algorithm` column: they name the token's type, not a hash (which is then SHA1, or the
/// file's `--algorithm` default).
fn pskc_kind(algorithm: &str) -> Option<TokenKind> {
    match algorithm.trim().to_ascii_lowercase().as_str() {
        "urn:ietf:params:xml:ns:keyprov:pskc:hotp" => Some(TokenKind::Hotp),
        "urn:ietf:params:xml:ns:keyprov:pskc:totp" => Some(TokenKind::Totp),
        _ => None,
    }
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

/// Whether a quoted field is still open at the end of `line`, as the CSV reader reads
/// quotes: one opens a field only as its first character (`6" token` is a literal quote),
/// and inside a quoted field `""` is a quote and a lone `"` closes it.
fn quote_left_open(line: &str) -> bool {
    let (mut quoted, mut field_start) = (false, true);
    let mut bytes = line.bytes().peekable();
    while let Some(b) = bytes.next() {
        if quoted {
            if b == b'"' && bytes.next_if_eq(&b'"').is_none() {
                quoted = false;
            }
            continue;
        }
        quoted = field_start && b == b'"';
        field_start = b == b',';
    }
    quoted
}

/// One physical line as CSV fields (quotes allowed; token files have no multi-line fields).
fn split_line(line: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_string())?;
    // A lone CR ends a record for the CSV reader, which would drop the rest of the line
    // without a word; `parse` refuses such lines before they get here.
    debug_assert!(!line.contains(&b'\r'));
    // The CSV reader takes a quote that is never closed as running to the end of its
    // input: `"alice` was read as alice, and a field quoted across two lines (which rows
    // split at every line do not allow) lost its second half without a word.
    if quote_left_open(text) {
        return Err(
            "a quote is opened and never closed on this line (a field cannot span \
                    lines; an inner quote is written twice: \"\")"
                .into(),
        );
    }
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
                    let at = fields.iter().position(|x| x == f).unwrap_or(0) + 1;
                    out.push(
                        invalid(
                            line,
                            format!(
                                "unknown column {} (column {at}) in the header (the columns \
                                 read: serial, secret, type, digits, counter, interval, \
                                 counter_or_step, algorithm, user, manufacturer, model; delete \
                                 a column radmfa has no use for)",
                                shown_name(f)
                            ),
                        ),
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
                        owner_dn: None,
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
    let (cols, mut base32_layout) = match header {
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
    let by_uri = get(Column::Algorithm).and_then(pskc_kind);
    let kind = match get(Column::Type).map(str::to_ascii_lowercase).as_deref() {
        None => by_uri.unwrap_or(TokenKind::Totp),
        Some("totp") => TokenKind::Totp,
        Some("hotp") => TokenKind::Hotp,
        Some(t) => return Err(format!("type {} is not hotp or totp", shown_name(t))),
    };
    if by_uri.is_some_and(|k| k != kind) {
        return Err("the type column and the algorithm column's PSKC URI disagree".into());
    }
    // A row that names its type (here by PSKC's URI) is an OATH row: a hex secret, as
    // pskc2csv writes it by default, is read as hex.
    base32_layout &= by_uri.is_none();
    let secret: Secret = match get(Column::Secret) {
        Some(s) => decode_key(s, d.encoding, base32_layout)?,
        None => return Err("secret is empty".into()),
    };
    let digits = match get(Column::Digits) {
        Some(v) => number("digits", v)?,
        None => d.digits,
    };
    let algorithm = match get(Column::Algorithm).filter(|_| by_uri.is_none()) {
        Some(a) => OtpAlgorithm::parse(a.trim_start_matches("hmac-").trim_start_matches("HMAC-"))
            .ok_or_else(|| {
            format!("algorithm {} is not SHA1, SHA256 or SHA512", shown_name(a))
        })?,
        None => d.algorithm,
    };
    let either = get(Column::CounterOrStep);
    let (mut period, mut counter) = (d.period, 0u64);
    match kind {
        TokenKind::Totp => {
            // A counter says HOTP. Without a type column every row is read as TOTP, and the
            // counter would be dropped without a word.
            if let Some(v) = get(Column::Counter) {
                if !cols.contains(&Column::Type) && by_uri.is_none() {
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
#[path = "csv_tests.rs"]
mod tests;
