//! Importing third-party OATH tokens: CSV (the Azure MFA Server layout and the common OATH
//! layout) and PSKC (RFC 6030: plain, pre-shared-key and password-based encryption).
//!
//! Parsers turn a file into [`Entry`]s, one per row or key element, each a token or a problem
//! naming where it is. [`plan`] then applies the mapping file, finds duplicates and existing
//! serials, and decides what would be stored; nothing here touches the store, so a dry run
//! and the real run see exactly the same decisions.

pub mod csv;
pub mod keys;
pub mod limits;
pub mod plan;
pub mod pskc;
pub mod shared_seeds;

use crate::secret::Secret;
use crate::store::{NewToken, OtpAlgorithm, TokenExtra, TokenKind};

/// Files larger than this are refused before parsing: a seed file of 100,000 tokens is a few
/// tens of MB, and the limit bounds the memory a hostile file can make us use.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

/// A token read from a file, with where it came from.
#[derive(Debug, Clone)]
pub struct ImportedToken {
    /// "line 7", "KeyPackage 3 (line 40)": what an error message points at.
    pub origin: String,
    pub token: NewToken,
    pub extra: TokenExtra,
    /// The directory DN the file named the owner by (a PSKC `UserId` such as
    /// `UID=jsmith,DC=example,DC=net`), which the owner's entry must have: the name is cut
    /// from its first value, and in Active Directory a CN is no login name (`CN=jsmith`
    /// may be John's entry, while `jsmith` is Jane's sAMAccountName).
    pub owner_dn: Option<String>,
}

/// Something wrong with one row or key element, or a reason it was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// One row or key element of the file.
#[derive(Debug, Clone)]
pub enum Entry {
    Token(Box<ImportedToken>),
    /// A bad row: all-or-nothing imports stop on it, `--skip-invalid` leaves it out.
    Invalid(Problem),
    /// A bad row whose serial could be read: as [`Entry::Invalid`], and a valid row with
    /// the same serial elsewhere in the file is not imported either (which of the two was
    /// meant is not known).
    InvalidToken(Problem, String),
    /// Not a token at all (a PSKC PIN key): reported, never an error.
    Ignored(Problem),
    /// Something the admin should know about tokens that are imported (a PSKC file whose
    /// keys have no SerialNo): reported, and nothing is left out for it.
    Note(Problem),
}

/// A file that cannot be read as a whole (bad XML, wrong key or passphrase, too large).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a PSKC file: {0}")]
    Xml(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the file is encrypted: {0}")]
    KeyNeeded(String),
    #[error("wrong key or passphrase: {0}; nothing was imported")]
    WrongKey(String),
    #[error("{0}")]
    BadKey(String),
    /// Reading stopped at a limit of [`limits`]; the problems found before it, to show.
    #[error("{reason}; nothing was imported")]
    CutOff { reason: String, first: Vec<Problem> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Pskc,
}

/// PSKC files are XML, which starts with `<` (after an optional BOM and whitespace); a CSV
/// row never does.
pub fn detect(bytes: &[u8]) -> Format {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => Format::Pskc,
        _ => Format::Csv,
    }
}

/// Refuses a UTF-16 file (Notepad's "Unicode", PowerShell 5's `Out-File`): its byte order
/// mark, or the NUL bytes ASCII text has in UTF-16, in the first line. Read as UTF-8 it was
/// taken for CSV (its first byte is no `<`) and every line reported as a bad row.
pub fn refuse_utf16(bytes: &[u8]) -> Result<(), ImportError> {
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(bytes);
    let first_line = &first_line[..first_line.len().min(4096)];
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") || first_line.contains(&0) {
        return Err(ImportError::Unsupported(
            "the file is UTF-16; save it as UTF-8".into(),
        ));
    }
    Ok(())
}

/// How to decrypt an encrypted PSKC file.
#[derive(Debug, Clone, Default)]
pub enum Decryption {
    #[default]
    None,
    /// The pre-shared key (or an already derived key).
    Key(Secret),
    /// The PBKDF2 passphrase.
    Passphrase(Secret),
}

/// Defaults for what a file leaves out: a CSV row's hash, digits, time step and key
/// encoding; a PSKC key's `Suite`, `ResponseFormat Length` and `TimeInterval`. And whether
/// a PSKC `TimeDrift` may put a token's clock more than
/// [`SLOW_CLOCK_LIMIT_SECS`](crate::mfa::otp::SLOW_CLOCK_LIMIT_SECS) behind (`--clock-behind`).
#[derive(Debug, Clone)]
pub struct FileDefaults {
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    pub period: u32,
    pub encoding: keys::KeyEncoding,
    pub clock_behind: bool,
}

impl Default for FileDefaults {
    fn default() -> Self {
        FileDefaults {
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            encoding: keys::KeyEncoding::Auto,
            clock_behind: false,
        }
    }
}

/// Reads a whole file in the given (or detected) format.
pub fn parse(
    bytes: &[u8],
    format: Option<Format>,
    decryption: &Decryption,
    defaults: &FileDefaults,
) -> Result<Vec<Entry>, ImportError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge {
            size: bytes.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    refuse_utf16(bytes)?;
    match format.unwrap_or_else(|| detect(bytes)) {
        Format::Csv => csv::parse(bytes, defaults),
        Format::Pskc => pskc::parse(bytes, decryption, defaults),
    }
}

/// A value quoted in a message, unless it is long enough to be a token's secret: a file
/// whose columns are not where the layout says (an export saved without its header row)
/// would otherwise print its secrets to the terminal. A secret is at least 10 bytes, 16
/// characters in Base32; names, numbers and types are shorter than 13 and still shown.
/// Quoted as Rust does, so control characters reach the terminal escaped.
pub(crate) fn shown(v: &str) -> String {
    match v.chars().count() {
        n if n > 12 => format!("(a {n}-character value, not shown)"),
        _ => format!("{v:?}"),
    }
}

/// Longest manufacturer or model name kept; `token show` prints them.
const MAX_LABEL_CHARS: usize = 128;

/// A control character, or a format character that prints as nothing or reorders the text
/// (the ones a login's User-Name is refused for).
pub(crate) fn unprintable(c: char) -> bool {
    c.is_control() || crate::pipeline::invisible_format(c)
}

/// Checks shared by every format, so a token from any file meets the same rules.
pub fn check_token(t: &NewToken, extra: &TokenExtra) -> Result<(), String> {
    // Invisible format characters as well as controls: a bidi override or a zero-width
    // character in a serial reorders or hides what follows it in the log and `token list`.
    if t.serial.is_empty() || t.serial.len() > 128 || t.serial.chars().any(unprintable) {
        return Err(format!(
            "serial {} is empty, longer than 128 characters or has control or invisible \
             characters",
            shown(&t.serial)
        ));
    }
    for (what, value) in [
        ("manufacturer", &extra.manufacturer),
        ("model", &extra.model),
    ] {
        // Control characters would be terminal escapes in `token show`, and a NUL fails
        // PostgreSQL's insert for the whole file.
        if let Some(v) = value.as_deref() {
            if v.chars().count() > MAX_LABEL_CHARS || v.chars().any(char::is_control) {
                return Err(format!(
                    "{what} {} is longer than {MAX_LABEL_CHARS} characters or has control \
                     characters",
                    shown(v)
                ));
            }
        }
    }
    if t.serial == crate::store::seal::KEY_CHECK_AAD {
        return Err(format!(
            "serial {:?} is reserved for the store's key check",
            t.serial
        ));
    }
    // A serial a spreadsheet turned into a number and wrote back in scientific notation
    // (100001234567 saved as 1.00001E+11): its digits are gone, and it was imported as
    // the serial "1.00001E+11", matching no token's label.
    if looks_like_scientific_notation(&t.serial) {
        return Err(format!(
            "serial {} is a number a spreadsheet rewrote in scientific notation, and its \
             digits are lost: export the file again without saving it from a spreadsheet \
             (or format that column as text)",
            shown(&t.serial)
        ));
    }
    // A seed in the serial's column (columns swapped) was imported as the serial: shown by
    // `token list`, stored unsealed, and written into every audit record of its logins.
    if looks_like_a_key(&t.serial) {
        return Err(format!(
            "serial {} looks like a key (Base32 or hex), not a serial: are the file's \
             columns where its header or layout says?",
            shown(&t.serial)
        ));
    }
    // RFC 4226 asks for at least 128 bits and recommends 160; 80 bits (10 bytes) is the least
    // any authenticator app or hardware token in use generates. Shorter falls to a search
    // from one observed code.
    if t.secret.len() < 10 || t.secret.len() > 256 {
        return Err(format!(
            "secret is {} bytes; it must be 10 to 256",
            t.secret.len()
        ));
    }
    if !(6..=8).contains(&t.digits) {
        return Err(format!("{} digits: tokens show 6, 7 or 8", t.digits));
    }
    if t.kind == TokenKind::Totp && !(10..=300).contains(&t.period) {
        return Err(format!(
            "time step of {} s: it must be 10 to 300 seconds",
            t.period
        ));
    }
    // Room above the counter for the look-ahead and resync searches and the counter stored
    // after a code (one past it): a counter at the very top imported, then every login on
    // the token failed as a corrupt row.
    const MAX_COUNTER: u64 = i64::MAX as u64 - crate::config::MAX_RESYNC_WINDOW as u64 - 1;
    if t.counter > MAX_COUNTER {
        return Err(format!(
            "counter {} is out of range: at most {MAX_COUNTER}",
            t.counter
        ));
    }
    if let Some(u) = &t.user {
        // As `user enroll-totp` refuses them: logins under such a name are refused.
        if u.is_empty() || u.len() > 253 || u.chars().any(unprintable) {
            return Err(format!(
                "user {} is empty, too long or has control or invisible characters",
                shown(u)
            ));
        }
        if looks_like_a_key(u) {
            return Err(format!(
                "user {} looks like a key (Base32 or hex), not a name: are the file's \
                 columns where its header or layout says?",
                shown(u)
            ));
        }
    }
    Ok(())
}

/// A value no user name is and a seed is: 26 or more Base32 letters with a digit among them
/// (16 bytes or more; a random one has a digit but once in 750), or 40 or more hex digits
/// (20 bytes, the usual hardware seed; a GUID, 32, stays a name). A seed in the
/// owner's column (columns swapped under their header) was taken as the owner's name: warned
/// about, audited and listed as one; in the serial's column, as the serial.
pub(crate) fn looks_like_a_key(value: &str) -> bool {
    let v = value.trim_end_matches('=');
    let base32 = v.len() >= 26
        && v.bytes()
            .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
        && v.bytes().any(|b| b.is_ascii_digit());
    let hex = v.len() >= 40 && v.bytes().all(|b| b.is_ascii_hexdigit());
    base32 || hex
}

/// `1.00001E+11`, `1E+12`, `9.9e+10`: how spreadsheets write a long number back.
fn looks_like_scientific_notation(v: &str) -> bool {
    let Some((mantissa, exponent)) = v.split_once(['E', 'e']) else {
        return false;
    };
    // Spreadsheets write the sign; a serial such as 2E12345 has none.
    let Some(exponent) = exponent.strip_prefix('+') else {
        return false;
    };
    let (whole, fraction) = mantissa.split_once(['.', ',']).unwrap_or((mantissa, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction) && digits(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid TOTP token with this serial and owner, for checks of one field.
    fn totp_token(serial: &str, user: Option<&str>) -> NewToken {
        NewToken {
            serial: serial.into(),
            user: user.map(str::to_string),
            kind: TokenKind::Totp,
            algorithm: crate::store::OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            counter: 0,
            secret: crate::secret::Secret::new(vec![7; 20]),
        }
    }

    /// A bidi override, a zero-width or a combining grapheme joiner in a serial or an owner
    /// is refused as a control character is: the serial went raw into the log (reordering
    /// the line), and logins under such an owner are refused, as `user enroll-totp` says.
    #[test]
    fn invisible_characters_in_a_serial_or_owner_are_refused() {
        let extra = TokenExtra::default();
        for bad in ["HW\u{202e}4321", "HW\u{200b}1", "ali\u{34f}ce"] {
            let e = check_token(&totp_token(bad, None), &extra).unwrap_err();
            assert!(e.contains("control or invisible characters"), "{e}");
            let e = check_token(&totp_token("HW-1", Some(bad)), &extra).unwrap_err();
            assert!(e.contains("control or invisible characters"), "{e}");
        }
        check_token(&totp_token("HW-1", Some("alice")), &extra).unwrap();
    }

    #[test]
    fn a_serial_a_spreadsheet_rewrote_is_refused() {
        for rewritten in ["1.00001E+11", "1E+12", "9,87654E+14", "1.2e+10"] {
            assert!(looks_like_scientific_notation(rewritten), "{rewritten}");
        }
        for serial in [
            "1234567890",
            "E12345",
            "GALT1E5",
            "1E",
            "TOTP-1E+5x",
            "2E-5A",
            "2E12345",
        ] {
            assert!(!looks_like_scientific_notation(serial), "{serial}");
        }
    }

    /// A seed in the owner's column is refused without being printed; names, long ones
    /// and GUIDs included, are not.
    #[test]
    fn a_key_in_the_owners_column_is_refused() {
        let token = |user: &str| totp_token("T1", Some(user));
        let extra = TokenExtra::default();
        for key in [
            "n7x2i2ggxnyqfpcgeper4h5mb6762qls",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "JBSWY3DPEHPK3PXPJBSWY3DPEH======",
            "3132333435363738393031323334353637383930",
        ] {
            let err = check_token(&token(key), &extra).unwrap_err();
            assert!(err.contains("looks like a key"), "{err}");
            assert!(!err.contains(key), "{err}");
        }
        for name in [
            "christopherjones",
            "alice",
            "administratorofthedomainxyz",
            "john.smith2@example.org",
            "3f2504e04f8941d39a0c0305e82c3301",
            "CORP\\alice",
        ] {
            assert!(check_token(&token(name), &extra).is_ok(), "{name}");
        }
    }

    /// A seed in the serial's column is refused too, without being printed; serials as
    /// vendors print them are not.
    #[test]
    fn a_key_in_the_serials_column_is_refused() {
        let token = |serial: &str| totp_token(serial, None);
        let extra = TokenExtra::default();
        for key in [
            "KNSWKZCNIFJEWRKSMVZGS3SVKBJVINZX",
            "3132333435363738393031323334353637383930",
        ] {
            let err = check_token(&token(key), &extra).unwrap_err();
            assert!(err.starts_with("serial (a "), "{err}");
            assert!(err.contains("looks like a key"), "{err}");
            assert!(!err.contains(key), "{err}");
        }
        for serial in [
            "TOKENSERIALAAAAA",
            "TOTP-0123456789abcd",
            "GALT12345678",
            "1234567890",
            "3f2504e04f8941d39a0c0305e82c3301",
            "FTK-2000-ABCDEFGHIJKLMNOPQRSTUV",
        ] {
            assert!(check_token(&token(serial), &extra).is_ok(), "{serial}");
        }
    }

    /// A counter too near the top to count on (the store keeps the one after a used code,
    /// and the searches look ahead) is refused at import, not at every login afterwards.
    #[test]
    fn an_hotp_counter_without_room_to_count_is_refused() {
        let token = |counter: u64| NewToken {
            serial: "H1".into(),
            user: None,
            kind: TokenKind::Hotp,
            algorithm: crate::store::OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            counter,
            secret: crate::secret::Secret::new(vec![7; 20]),
        };
        let extra = TokenExtra::default();
        let top = i64::MAX as u64 - u64::from(crate::config::MAX_RESYNC_WINDOW) - 1;
        assert!(check_token(&token(top), &extra).is_ok());
        for counter in [top + 1, i64::MAX as u64, u64::MAX] {
            let err = check_token(&token(counter), &extra).unwrap_err();
            assert!(
                err.starts_with(&format!("counter {counter} is out of range")),
                "{err}"
            );
        }
    }

    /// UTF-16 with either byte order mark, or none: refused by name, whichever format is
    /// asked for or detected (a PSKC file was read as CSV, a flood of bad rows).
    #[test]
    fn a_utf16_file_is_refused_by_name() {
        let text = "<?xml version=\"1.0\"?>\n<KeyContainer Version=\"1.0\"/>\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let csv: Vec<u8> = "SN1,GEZDGNBVGY3TQOJQ,30\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let files = [
            [&b"\xFF\xFE"[..], &le].concat(),
            [&b"\xFE\xFF"[..], &be].concat(),
            le,
            csv,
        ];
        for bytes in &files {
            for format in [None, Some(Format::Csv), Some(Format::Pskc)] {
                let d = FileDefaults::default();
                let err = parse(bytes, format, &Decryption::None, &d).unwrap_err();
                assert_eq!(err.to_string(), "the file is UTF-16; save it as UTF-8");
            }
            let err = pskc::need(bytes).unwrap_err();
            assert_eq!(err.to_string(), "the file is UTF-16; save it as UTF-8");
        }
        // UTF-8, with or without its own mark, is read.
        assert!(refuse_utf16(text.as_bytes()).is_ok());
        assert!(refuse_utf16(&[&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat()).is_ok());
    }
}
