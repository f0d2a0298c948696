//! PSKC (RFC 6030) key containers: one token per OATH `Key` (HOTP or TOTP); other keys (PINs,
//! OCRA) are reported and left out. Values may be plain or encrypted (see `envelope`).

mod crypto;
mod envelope;
mod header;
mod policy;
mod xml;

pub use envelope::Need;

use roxmltree::{Document, Node};

use self::envelope::{b64, Envelope, Value, ValueError};
use self::xml::{child, children, text, Lines};
use crate::import::{
    check_token, shown, Decryption, Entry, FileDefaults, ImportError, ImportedToken, Problem,
};
use crate::secret::Secret;
use crate::store::{user_key, NewToken, OtpAlgorithm, TokenExtra, TokenKind};

fn document(bytes: &[u8]) -> Result<Document<'_>, ImportError> {
    crate::import::refuse_utf16(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(bytes, &e))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = xml::parse(text)?;
    if doc.root_element().tag_name().name() != "KeyContainer" {
        return Err(ImportError::Xml(format!(
            "the root element is <{}>, not <KeyContainer>",
            doc.root_element().tag_name().name()
        )));
    }
    no_key_packages(&doc)?;
    Ok(doc)
}

/// A PSKC file in another encoding (`encoding="ISO-8859-1"`, a vendor's Latin-1 export
/// with "Société" in it) is a PSKC file radmfa reads only as UTF-8: said so, with the line
/// of the first byte that is not UTF-8 and the encoding the file declares. It was "not a
/// PSKC file: not UTF-8: invalid utf-8 sequence of 1 bytes from index 192" (red team).
fn not_utf8(bytes: &[u8], e: &std::str::Utf8Error) -> ImportError {
    let at = e.valid_up_to();
    let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
    let declared = head
        .split_once("encoding=")
        .and_then(|(_, rest)| {
            let rest = rest.trim_start_matches(['"', '\'']);
            let end = rest.find(['"', '\''])?;
            Some(rest[..end].to_string())
        })
        .filter(|d| d != "utf-8" && d != "utf8");
    ImportError::Unsupported(format!(
        "the file is not UTF-8 (line {line}{}); radmfa reads PSKC files as UTF-8: save it \
         as UTF-8 (`iconv -f {} -t UTF-8`), and nothing else changes",
        declared
            .as_deref()
            .map(|d| format!(", and it says encoding=\"{d}\""))
            .unwrap_or_default(),
        declared.as_deref().unwrap_or("ISO-8859-1").to_uppercase()
    ))
}

/// A container without `<KeyPackage>` has nothing RFC 6030 would import: said, rather than
/// parsed to no entries and reported as "no valid token" with no reason. The pre-RFC draft
/// format (draft-hoyer-keyprov-*, older ActivIdentity exports) holds `<Device>` elements
/// instead, and is named so the admin knows to ask for an RFC 6030 export.
fn no_key_packages(doc: &Document<'_>) -> Result<(), ImportError> {
    let root = doc.root_element();
    if children(root, "KeyPackage").next().is_some() {
        return Ok(());
    }
    Err(ImportError::Unsupported(match child(root, "Device") {
        Some(device) => format!(
            "no <KeyPackage> elements, but <Device> elements (the first on line {}): that is \
             the pre-RFC 6030 draft format (draft-hoyer-keyprov), which radmfa does not read; \
             export the tokens as RFC 6030 PSKC",
            doc.text_pos_at(device.range().start).row
        ),
        None => "no <KeyPackage> elements in the <KeyContainer>: no key to import".into(),
    }))
}

/// What the file needs (nothing, a key, or a passphrase), so the CLI can ask before parsing.
pub fn need(bytes: &[u8]) -> Result<Need, ImportError> {
    crate::import::refuse_utf16(bytes)?;
    if let Some(need) = header::need(bytes) {
        return need;
    }
    let doc = document(bytes)?;
    envelope::need(doc.root_element())
}

/// `defaults` give the hash, digits and time step of a key whose file leaves them out
/// (RFC 6030 makes `Suite`, `ResponseFormat` and `TimeInterval` optional): an admin who
/// knows a vendor's tokens are 8-digit says so with `--digits 8` for PSKC as for CSV.
pub fn parse(
    bytes: &[u8],
    decryption: &Decryption,
    defaults: &FileDefaults,
) -> Result<Vec<Entry>, ImportError> {
    // A wrong key or passphrase is told before the whole file is parsed.
    let early = header::envelope(bytes, decryption).transpose()?;
    let doc = document(bytes)?;
    let lines = Lines::of(doc.input_text());
    let root = doc.root_element();
    let env = match early {
        Some(env) => env,
        None => Envelope::open(root, decryption)?,
    };
    let mut out = Vec::new();
    // A wrong key makes every encrypted value fail: that is one clear error, not a list.
    let (mut crypto_failed, mut crypto_ok) = (None::<String>, 0usize);
    // Keys whose serial is their Key Id, for want of a SerialNo: the first, and how many.
    let (mut by_key_id, mut by_key_id_count) = (None::<String>, 0usize);
    for (i, pkg) in children(root, "KeyPackage").enumerate() {
        let keys: Vec<_> = children(pkg, "Key").collect();
        // The package's own elements, once (not per key: a package of many keys would cost
        // its size times their number).
        let package_repeat = xml::repeated_element(pkg, true, &lines);
        let device = child(pkg, "DeviceInfo");
        // Left out silently, a package's device would go missing from an import that
        // otherwise succeeds (RFC 6030 allows a package of DeviceInfo alone).
        if keys.is_empty() {
            out.push(Entry::Invalid(Problem {
                origin: format!("KeyPackage {} (line {})", i + 1, lines.line(pkg)),
                message: "no <Key> in it: nothing to import".into(),
            }));
        }
        for (j, key) in keys.iter().enumerate() {
            let serial = key_serial(device, *key);
            let mut origin = format!("KeyPackage {} (line {}", i + 1, lines.line(pkg));
            // The serial too, which is what the admin finds the key by in the vendor's list.
            if let Some(serial) = serial.as_deref().and_then(shown_serial) {
                origin.push_str(&format!(", serial {serial}"));
            }
            origin.push(')');
            if keys.len() > 1 {
                origin = format!("{origin} Key {}", j + 1);
            }
            if serial.is_some() && device.and_then(|d| text(d, &["SerialNo"])).is_none() {
                by_key_id.get_or_insert_with(|| origin.clone());
                by_key_id_count += 1;
            }
            // The package's own elements and this key's, each where RFC 6030 allows one.
            let repeated = package_repeat
                .clone()
                .or_else(|| xml::repeated_element(*key, false, &lines));
            // Where a key is refused, its serial if it has one: a valid key of the same
            // serial elsewhere in the file is then not imported either.
            let refused = |origin: String, message: String| match serial.clone() {
                Some(serial) => Entry::InvalidToken(Problem { origin, message }, serial),
                None => Entry::Invalid(Problem { origin, message }),
            };
            if let Some(message) = repeated {
                out.push(refused(origin, message));
                continue;
            }
            match read_key(&env, &lines, device, *key, defaults) {
                Ok(Some((token, extra, encrypted, owner_dn))) => {
                    crypto_ok += usize::from(encrypted);
                    out.push(match check_token(&token, &extra) {
                        Ok(()) => Entry::Token(Box::new(ImportedToken {
                            origin,
                            token,
                            extra,
                            owner_dn,
                        })),
                        Err(message) => {
                            Entry::InvalidToken(Problem { origin, message }, token.serial)
                        }
                    })
                }
                Ok(None) => out.push(Entry::Ignored(Problem {
                    origin,
                    message: format!(
                        "algorithm {} is not HOTP or TOTP; left out",
                        shown_uri(key.attribute("Algorithm").unwrap_or(""))
                    ),
                })),
                Err(e) => {
                    let crypto = matches!(e, ValueError::Crypto(_));
                    let message = e.message();
                    if crypto && crypto_failed.is_none() {
                        crypto_failed = Some(message.clone());
                    }
                    out.push(refused(origin, message));
                }
            }
        }
    }
    if let (Some(m), 0) = (crypto_failed, crypto_ok) {
        return Err(ImportError::WrongKey(m));
    }
    // One note for the file, not one per key: a file without SerialNo has none anywhere.
    if let Some(origin) = by_key_id {
        let others = match by_key_id_count - 1 {
            0 => String::new(),
            n => format!(" (and {n} more key(s))"),
        };
        out.push(Entry::Note(Problem {
            origin,
            message: format!(
                "no DeviceInfo/SerialNo{others}: the serial is the Key's Id attribute; check \
                 that it is what is printed on the token"
            ),
        }));
    }
    Ok(out)
}

/// A serial as an origin names it: escaped as `token list` shows it, and not at all when it
/// looks like a key (a seed in the wrong element must not reach the terminal).
fn shown_serial(serial: &str) -> Option<String> {
    if crate::import::looks_like_a_key(serial) || serial.chars().count() > 128 {
        return None;
    }
    Some(crate::admin::printable(serial).into_owned())
}

/// The algorithm URI's last segment: `urn:…:pskc:hotp`, `…#totp`, `…/hotp`.
fn oath_kind(uri: &str) -> Option<TokenKind> {
    let last = uri
        .rsplit([':', '#', '/'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match last.as_str() {
        "hotp" => Some(TokenKind::Hotp),
        "totp" => Some(TokenKind::Totp),
        _ => None,
    }
}

/// `Suite` names the hash: "HMAC-SHA256", "SHA256" (left out, the import's default: SHA1
/// unless `--algorithm` says otherwise).
fn suite_algorithm(s: &str) -> Result<OtpAlgorithm, ValueError> {
    let up = s.to_ascii_uppercase().replace(['-', '_'], "");
    for (name, alg) in [
        ("SHA512", OtpAlgorithm::Sha512),
        ("SHA256", OtpAlgorithm::Sha256),
        ("SHA1", OtpAlgorithm::Sha1),
    ] {
        if up.contains(name) {
            return Ok(alg);
        }
    }
    Err(ValueError::Other(format!(
        "Suite {} names no SHA1/SHA256/SHA512 hash",
        shown(s)
    )))
}

/// A `UserId` may be a directory DN (RFC 6030 Figure 3: `UID=jsmith,DC=…`): the uid or cn
/// in front is the user name radmfa knows; any other DN names no user, and the token is
/// imported unassigned. So does a first value with an escape or a space: that is a display
/// name (Active Directory's `CN=Smith\, John` or `CN=John Smith`), and cutting a login
/// name out of it would give the token to `smith\` or `john smith`.
fn user_from_userid(id: &str) -> Option<String> {
    if !id.contains('=') {
        return Some(user_key(id));
    }
    let first = id.split(',').next()?;
    let (attr, value) = first.split_once('=')?;
    let value = value.trim();
    let login_like = !value.is_empty()
        && !value.contains(['\\', '"', '+'])
        && !value.contains(char::is_whitespace);
    (login_like
        && matches!(
            attr.trim().to_ascii_lowercase().as_str(),
            "uid" | "cn" | "samaccountname"
        ))
    .then(|| user_key(value))
}

fn date(s: Option<String>, what: &str) -> Result<Option<i64>, ValueError> {
    let Some(s) = s else { return Ok(None) };
    let fmt = &time::format_description::well_known::Rfc3339;
    // xs:dateTime writes the end of a day as 24:00:00 (the next day's 00:00:00), as an
    // ExpiryDate "valid through 2027-12-31" may; RFC 3339 has no hour 24.
    let (text, days) = match end_of_day(&s) {
        Some(midnight) => (midnight, 1),
        None => (s.clone(), 0),
    };
    time::OffsetDateTime::parse(&text, fmt)
        // Files often leave out the zone (python-pskc does); RFC 6030 times are UTC.
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}Z"), fmt))
        .map(|t| Some(t.unix_timestamp() + days * 86_400))
        .map_err(|_| ValueError::Other(format!("{what} {} is not an xs:dateTime", shown_uri(&s))))
}

/// `2027-12-31T24:00:00[.0…][zone]` as `2027-12-31T00:00:00[zone]`, the caller adding the
/// day; `None` for any other time, 24:00:00.5 included (not an xs:dateTime).
fn end_of_day(s: &str) -> Option<String> {
    let (day, rest) = s.split_once("T24:00:00")?;
    let zone = match rest.strip_prefix('.') {
        Some(fraction) => {
            let zeros = fraction.len() - fraction.trim_start_matches('0').len();
            if zeros == 0 {
                return None;
            }
            &fraction[zeros..]
        }
        None => rest,
    };
    Some(format!("{day}T00:00:00{zone}"))
}

fn data_int<T: TryFrom<i128>>(
    env: &Envelope,
    key: Node<'_, '_>,
    name: &str,
) -> Result<Option<T>, ValueError> {
    let Some(elem) = xml::path(key, &["Data", name]) else {
        return Ok(None);
    };
    let n: i128 = match env.value(elem)? {
        Value::Plain(s) => s.parse().map_err(|_| {
            ValueError::Other(format!("{name} {} is not a whole number", shown(&s)))
        })?,
        Value::Decrypted(b) => decrypted_int(name, b.expose())?,
    };
    T::try_from(n)
        .map(Some)
        .map_err(|_| ValueError::Other(format!("{name} {} is out of range", shown(&n.to_string()))))
}

/// An encrypted integer's bytes. python-pskc (whose files radmfa's tests import) writes
/// the shortest unsigned big-endian bytes (`'%x' % value`: a Counter of 200 is the one
/// byte C8, which read as signed was -56). Some vendors encrypt the number's text instead,
/// which python-pskc reads as decimal when every byte is an ASCII digit
/// (its tests/misc/integers.pskcxml) — and so misreads its own 50, written as the byte
/// "2". Such bytes are refused rather than guessed: read too low, an HOTP counter makes
/// codes already used work again; read too high (text "10" as 12,592), the token's codes
/// never match again. More than 8 such bytes can only be text. python-pskc cannot encrypt
/// a negative number (its hex of -4 is "-4", which it fails to unhexlify), so only a full
/// 8-byte TimeDrift, an xs:long's width, is two's complement.
fn decrypted_int(name: &str, b: &[u8]) -> Result<i128, ValueError> {
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        let text: Option<i128> = std::str::from_utf8(b).ok().and_then(|s| s.parse().ok());
        let Some(text) = text else {
            return Err(ValueError::Other(format!("{name} is out of range")));
        };
        if b.len() > 8 {
            return Ok(text);
        }
        let bytes = b.iter().fold(0i128, |acc, x| (acc << 8) | i128::from(*x));
        return Err(ValueError::Other(format!(
            "{name}'s encrypted value is all ASCII digits: it reads as {bytes} (its bytes) \
             or as {text} (its text, as some vendors write it); not guessed. Export the \
             file with {name} unencrypted, or import with --skip-invalid and set the token \
             up afresh"
        )));
    }
    match b.len() {
        8 if name == "TimeDrift" => Ok(i128::from(i64::from_be_bytes(
            b.try_into().expect("8 bytes"),
        ))),
        1..=8 => Ok(b.iter().fold(0i128, |acc, x| (acc << 8) | i128::from(*x))),
        _ => Err(ValueError::Other(format!(
            "{name} is not 1 to 8 bytes long"
        ))),
    }
}

/// A key's token, its data, whether it was encrypted, and the DN its owner was named by.
type KeyRead = (NewToken, TokenExtra, bool, Option<String>);

/// 2000-01-01T00:00:00Z: no token file was written before it.
const Y2000: i64 = 946_684_800;

/// The largest TimeDrift taken from a file: `[hotp] resync_window`'s own upper bound.
const MAX_TIME_DRIFT: u64 = crate::config::MAX_RESYNC_WINDOW as u64;

/// RFC 6030 §4.1's `Time` is "the number of time intervals passed from a specific start
/// point" (python-pskc's `time_offset`): an exporter writes the step its token is at, not
/// RFC 6238's T0. radmfa counts steps from 1970 and stores no start point, so 0, or a step
/// count of any day from 2000 (when the file may have been written: vendors write theirs
/// at manufacture, months or years before an import) up to `MAX_TIME_DRIFT` steps past
/// now's (the most drift a token is given), needs nothing. Any other value is no step
/// count of a day a file was written, but a start point that would shift every code: the
/// key is refused.
fn check_time(
    time: i64,
    kind: TokenKind,
    period: u32,
    now: i64,
    line: usize,
) -> Result<(), ValueError> {
    if time == 0 {
        return Ok(());
    }
    if kind == TokenKind::Hotp {
        return Err(ValueError::Other(format!(
            "Time {time} (line {line}) on an HOTP key: Time is for time-based keys"
        )));
    }
    // `period` is checked to be 10 to 300 s later; 0 must not divide here.
    let step = now / i64::from(period.max(1));
    let since_2000 = Y2000 / i64::from(period.max(1));
    if (since_2000..=step.saturating_add_unsigned(MAX_TIME_DRIFT)).contains(&time) {
        return Ok(());
    }
    Err(ValueError::Other(format!(
        "Time {time} (line {line}) is neither 0 nor the step count of a day since 2000 \
         (steps of {period} s since 1970: {since_2000} on 2000-01-01, about {step} now, up \
         to {MAX_TIME_DRIFT} more taken): RFC 6030's Time counts the steps passed, and a \
         start point other than 1970 (RFC 6238's T0) is not supported"
    )))
}

/// The serial a key is stored under: its device's SerialNo, else the Key's Id. Trimmed both:
/// `Id=" OK-1 "` made a serial apart from `OK-1`, which the inventory checks and `token show
/// OK-1` did not find.
fn key_serial(device: Option<Node<'_, '_>>, key: Node<'_, '_>) -> Option<String> {
    device.and_then(|d| text(d, &["SerialNo"])).or_else(|| {
        key.attribute("Id")
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
    })
}

/// `device` is the package's DeviceInfo, looked up once per package: with many Keys in one
/// package and no DeviceInfo, a lookup per key would scan all of the package's children
/// each time.
fn read_key(
    env: &Envelope,
    lines: &Lines,
    device: Option<Node<'_, '_>>,
    key: Node<'_, '_>,
    defaults: &FileDefaults,
) -> Result<Option<KeyRead>, ValueError> {
    let Some(uri) = key.attribute("Algorithm") else {
        // Schema-valid (a file may lean on a KeyProfileId), but which kind of token a
        // secret is for is unknown: an error, not a token gone missing with a note.
        if xml::path(key, &["Data", "Secret"]).is_some() {
            return Err(ValueError::Other(
                "Key has a Secret but no Algorithm attribute: not known to be HOTP or TOTP; \
                 not imported"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let Some(kind) = oath_kind(uri) else {
        // A PIN or OCRA key is left out with a note. A vendor's spelling of an OATH
        // algorithm (`…:hotp-sha256`) is a token that would go missing without an error.
        // An OCRA suite (`…#OCRA-1:HOTP-SHA1-6:QN08`) names HOTP inside it, and is OCRA.
        let lower = uri.to_ascii_lowercase();
        let ocra = lower.contains("ocra");
        if !ocra && (lower.contains("hotp") || lower.contains("totp")) {
            return Err(ValueError::Other(format!(
                "Algorithm {} is not the PSKC HOTP or TOTP URI \
                 (urn:ietf:params:xml:ns:keyprov:pskc:hotp or …:totp); not imported",
                shown_uri(uri)
            )));
        }
        return Ok(None);
    };
    let other = |m: &str| ValueError::Other(m.to_string());
    let dev_text = |n: &str| device.and_then(|d| text(d, &[n]));
    let serial = key_serial(device, key)
        .ok_or_else(|| other("no DeviceInfo/SerialNo and no Key Id to use as the serial"))?;
    let policy = child(key, "Policy");
    if let Some(p) = policy {
        policy::check(p, lines)?;
    }
    let params = child(key, "AlgorithmParameters");
    let format = params.and_then(|p| child(p, "ResponseFormat"));
    if let Some(enc) = format.and_then(|f| f.attribute("Encoding")) {
        if !enc.eq_ignore_ascii_case("DECIMAL") {
            return Err(other(&format!(
                "ResponseFormat Encoding {}: only DECIMAL codes are supported",
                shown(enc)
            )));
        }
    }
    // RFC 6030 §4.3.4: with CheckDigits the device appends a Luhn digit that Length does
    // not count. Stored as Length digits, the token's codes would never verify.
    if format
        .and_then(|f| f.attribute("CheckDigits"))
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("true") || c.trim() == "1")
    {
        return Err(other(
            "ResponseFormat CheckDigits=\"true\": codes with a Luhn check digit are not supported",
        ));
    }
    let digits = match format.and_then(|f| f.attribute("Length")) {
        Some(l) => l.trim().parse().map_err(|_| {
            other(&format!(
                "ResponseFormat Length {} is not a number of digits",
                shown(l)
            ))
        })?,
        None => defaults.digits,
    };
    let algorithm = match params.and_then(|p| text(p, &["Suite"])) {
        Some(suite) => suite_algorithm(&suite)?,
        None => defaults.algorithm,
    };
    let secret_elem = xml::path(key, &["Data", "Secret"]).ok_or_else(|| {
        other("no Data/Secret (keys derived from a master key, RFC 6030 Figure 4, cannot be imported)")
    })?;
    let (secret, encrypted) = match env.value(secret_elem)? {
        // In a file that is encrypted, a seed in plain text is one nobody protected: someone
        // who altered the file in transit would choose it. Refused, not read.
        Value::Plain(_) if env.encrypted() => {
            return Err(other(
                "Secret: PlainValue in an encrypted file (its seeds must be encrypted; an \
                 altered file could choose this one)",
            ))
        }
        Value::Plain(s) => (
            Secret::new(b64(&s).map_err(|e| other(&format!("Secret {e}")))?),
            false,
        ),
        Value::Decrypted(s) => (s, true),
    };
    let (period, counter) = match kind {
        TokenKind::Totp => (
            data_int(env, key, "TimeInterval")?.unwrap_or(defaults.period),
            0,
        ),
        TokenKind::Hotp => (0, data_int(env, key, "Counter")?.unwrap_or(0)),
    };
    if let Some(elem) = xml::path(key, &["Data", "Time"]) {
        let time = data_int::<i64>(env, key, "Time")?.unwrap_or(0);
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        check_time(time, kind, period, now, lines.line(elem))?;
    }
    let user_id = text(key, &["UserId"]).or_else(|| dev_text("UserId"));
    let user = user_id.as_deref().and_then(user_from_userid);
    let owner_dn = user_id.filter(|id| user.is_some() && id.contains('='));
    let pol_text = |n: &str| policy.and_then(|p| text(p, &[n]));
    let extra = TokenExtra {
        manufacturer: dev_text("Manufacturer"),
        model: dev_text("Model"),
        valid_from: date(
            pol_text("StartDate").or_else(|| dev_text("StartDate")),
            "StartDate",
        )?,
        valid_until: date(
            pol_text("ExpiryDate").or_else(|| dev_text("ExpiryDate")),
            "ExpiryDate",
        )?,
        drift: match kind {
            TokenKind::Totp => {
                // As far as `token resync` may move it: a larger value is no clock's drift,
                // and would put the token's window out of reach (or past i64 arithmetic).
                let d: i64 = data_int(env, key, "TimeDrift")?.unwrap_or(0);
                if d.unsigned_abs() > MAX_TIME_DRIFT {
                    return Err(ValueError::Other(format!(
                        "TimeDrift {} is more than {MAX_TIME_DRIFT} time steps either way",
                        shown(&d.to_string())
                    )));
                }
                // As `token resync` does: a clock that slow is the admin's to confirm.
                let behind = -d * i64::from(period);
                if behind > crate::mfa::otp::SLOW_CLOCK_LIMIT_SECS && !defaults.clock_behind {
                    return Err(ValueError::Other(format!(
                        "TimeDrift {d} sets the token's clock {} behind: codes that old \
                         would be taken, and they could be codes seen on its display long \
                         ago. If its clock is that slow, import with --clock-behind",
                        minutes_and_seconds(behind)
                    )));
                }
                d
            }
            TokenKind::Hotp => 0,
        },
        resync: None,
        enrolled: false,
        unreadable_seed: None,
    };
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
    Ok(Some((token, extra, encrypted, owner_dn)))
}

#[cfg(test)]
mod tests;

/// A URI or a date quoted in a message. These are longer than [`shown`] quotes, and hold a
/// ':', which no Base32, hex or Base64 secret has: a value without one may be a secret in
/// the wrong element, and is not shown.
fn shown_uri(v: &str) -> String {
    // An otpauth:// URI holds its secret in the query.
    let has_secret = v.to_ascii_lowercase().contains("secret=");
    if v.contains(':') && v.chars().count() <= 100 && !has_secret {
        format!("{v:?}")
    } else {
        shown(v)
    }
}

/// `1210` as "20 min 10 s": a drift just past the limit is not rounded down onto it.
fn minutes_and_seconds(secs: i64) -> String {
    match (secs / 60, secs % 60) {
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}
