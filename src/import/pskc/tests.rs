//! RFC 6030's own examples, read with the secrets the RFC gives, and the ways a file must be
//! refused.

use super::*;

macro_rules! figure {
    ($n:literal) => {
        include_bytes!(concat!(
            "../../../tests/fixtures/rfc6030/figure",
            $n,
            ".pskcxml"
        ))
    };
}

const RFC_SECRET: &[u8] = b"12345678901234567890";

/// The file read with the import's own defaults (no `--algorithm`, `--digits`, `--period`).
fn parse(bytes: &[u8], decryption: &Decryption) -> Result<Vec<Entry>, ImportError> {
    super::parse(bytes, decryption, &FileDefaults::default())
}

fn key(hex_key: &str) -> Decryption {
    Decryption::Key(Secret::new(hex::decode(hex_key).unwrap()))
}

fn tokens(entries: &[Entry]) -> Vec<&ImportedToken> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Token(t) => Some(&**t),
            _ => None,
        })
        .collect()
}

/// Figure 2's secret is "1234": four bytes, an example, not a key any token has. It is read
/// and refused by length, naming the KeyPackage and its line.
#[test]
fn figure2_basic_plain_secret_is_too_short() {
    let e = parse(figure!("2"), &Decryption::None).unwrap();
    assert!(tokens(&e).is_empty());
    let problems: Vec<String> = e
        .iter()
        .filter_map(|e| match e {
            Entry::Invalid(p) | Entry::InvalidToken(p, _) => Some(p.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            == "KeyPackage 1 (line 10, serial 12345678): secret is 4 bytes; it must be 10 to 256",
        "{problems:?}"
    );
    // With a real key in it: no DeviceInfo, so the Key Id is the serial.
    let text = String::from_utf8(figure!("2").to_vec()).unwrap();
    let text = text.replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=");
    let e = parse(text.as_bytes(), &Decryption::None).unwrap();
    let t = tokens(&e);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].token.serial, "12345678");
    assert_eq!(t[0].token.secret.expose(), RFC_SECRET);
    assert_eq!(t[0].token.kind, TokenKind::Hotp);
}

/// A TOTP key's TimeDrift is taken up to `token resync`'s own bounds: more than 20 minutes
/// behind only with `--clock-behind`, and never beyond `MAX_TIME_DRIFT` steps (a drift that
/// large is no clock's, and would reach past the window's arithmetic).
#[test]
fn time_drift_is_bounded() {
    let with_drift_and = |d: &str, defaults: &FileDefaults| {
        let text = String::from_utf8(figure!("2").to_vec()).unwrap();
        let text = text
            .replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=")
            .replace("pskc:hotp", "pskc:totp")
            .replace(
                "</Secret>",
                &format!("</Secret><TimeDrift><PlainValue>{d}</PlainValue></TimeDrift>"),
            );
        super::parse(text.as_bytes(), &Decryption::None, defaults).unwrap()
    };
    let with_drift = |d: &str| with_drift_and(d, &FileDefaults::default());
    let e = with_drift("-4");
    let t = tokens(&e);
    assert_eq!((t[0].token.kind, t[0].extra.drift), (TokenKind::Totp, -4));
    // 40 steps of 30 s behind is the 20 minutes `token resync` takes without --clock-behind;
    // one step more is refused without it (codes seen on the display long ago would work),
    // as is any step ahead beyond the bound.
    assert_eq!(tokens(&with_drift("-40"))[0].extra.drift, -40);
    let e = with_drift("-41");
    assert!(tokens(&e).is_empty());
    assert!(
        matches!(&e[0], Entry::Invalid(p) | Entry::InvalidToken(p, _) if p.message.starts_with("TimeDrift -41 sets the token's clock 20 min 30 s behind") && p.message.contains("--clock-behind")),
        "{:?}",
        e[0]
    );
    let behind = FileDefaults {
        clock_behind: true,
        ..FileDefaults::default()
    };
    let e = with_drift_and("-2880", &behind);
    assert_eq!(tokens(&e)[0].extra.drift, -2880);
    assert_eq!(tokens(&with_drift("2880"))[0].extra.drift, 2880);
    for d in ["100001", "-9223372036854775808"] {
        let e = with_drift_and(d, &behind);
        assert!(tokens(&e).is_empty(), "{d}");
        assert!(
            matches!(&e[0], Entry::Invalid(p) | Entry::InvalidToken(p, _) if p.message.contains("TimeDrift")),
            "{d}: {:?}",
            e[0]
        );
    }
}

/// RFC 6030's Time counts the steps passed (python-pskc's time_offset), and a file may
/// write the step its token is at: that is read. A value far from it would be a start
/// point (RFC 6238's T0), refused naming the value, the element's line and the step.
#[test]
fn time_is_0_or_a_step_count_since_2000() {
    let with_time = |t: i64| {
        let text = String::from_utf8(figure!("2").to_vec()).unwrap();
        let text = text
            .replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=")
            .replace("pskc:hotp", "pskc:totp")
            .replace(
                "</Secret>",
                &format!(
                    "</Secret>\n<Time><PlainValue>{t}</PlainValue></Time>\
                     <TimeInterval><PlainValue>30</PlainValue></TimeInterval>"
                ),
            );
        parse(text.as_bytes(), &Decryption::None).unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // 0, now's step, and that of a file written at manufacture two years before the import.
    for t in [0, now / 30, now / 30 - 2 * 365 * 2880] {
        let e = with_time(t);
        assert_eq!(tokens(&e).len(), 1, "{t}: {e:?}");
        assert_eq!(tokens(&e)[0].token.period, 30);
    }
    // A start point in steps (1970-01-05), and a count far past now's: refused.
    for t in [12345, now / 30 + 200_000] {
        let e = with_time(t);
        assert!(tokens(&e).is_empty());
        let Entry::InvalidToken(p, _) = &e[0] else {
            panic!("{:?}", e[0])
        };
        assert!(
            p.to_string().starts_with(&format!(
                "KeyPackage 1 (line 10, serial 12345678): Time {t} (line 19) is neither 0 nor \
                 the step count of a day since 2000 (steps of 30 s since 1970: 31556160 on 2000-01-01"
            )),
            "{p}"
        );
    }
}

#[test]
fn figure3_supplementary_data_and_user_dn() {
    let e = parse(figure!("3"), &Decryption::None).unwrap();
    let t = tokens(&e)[0];
    assert_eq!(t.token.serial, "987654321");
    assert_eq!(t.token.secret.expose(), RFC_SECRET);
    assert_eq!((t.token.digits, t.token.counter), (8, 0));
    assert_eq!(t.token.user.as_deref(), Some("jsmith"));
    assert_eq!(t.extra.manufacturer.as_deref(), Some("Manufacturer"));
}

#[test]
fn figure4_derived_key_is_a_named_problem() {
    let e = parse(figure!("4"), &Decryption::None).unwrap();
    match &e[0] {
        Entry::Invalid(p) | Entry::InvalidToken(p, _) => {
            assert!(p.message.contains("Figure 4"), "{p}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn figure5_pin_key_is_left_out() {
    let e = parse(figure!("5"), &Decryption::None).unwrap();
    assert_eq!(tokens(&e).len(), 1);
    assert_eq!(tokens(&e)[0].token.secret.expose(), RFC_SECRET);
    assert!(matches!(&e[1], Entry::Ignored(p) if p.message.contains("pin")));
}

#[test]
fn figure6_pre_shared_aes128_cbc_with_hmac_sha1() {
    assert_eq!(
        need(figure!("6")).unwrap(),
        Need::Key {
            name: Some("Pre-shared-key".into())
        }
    );
    let e = parse(figure!("6"), &key("12345678901234567890123456789012")).unwrap();
    let t = tokens(&e)[0];
    assert_eq!(t.token.secret.expose(), RFC_SECRET);
    assert_eq!((t.token.serial.as_str(), t.token.digits), ("987654321", 8));
    // Wrong key: the MAC key does not decrypt, or every ValueMAC fails. Nothing comes back.
    let err = parse(figure!("6"), &key("12345678901234567890123456789013")).unwrap_err();
    assert!(matches!(err, ImportError::WrongKey(_)), "{err}");
    // No key at all: asked for.
    assert!(matches!(
        parse(figure!("6"), &Decryption::None),
        Err(ImportError::KeyNeeded(_))
    ));
}

/// The forgery a one-block MAC key would allow: figure 6's MAC key is 20 bytes, so its
/// second CBC block is 4 known bytes and 12 of padding, and its block-cipher output is
/// known too. A new IV before that block makes it decrypt to a key of the forger's choosing
/// (here 5 bytes), under which they could MAC any value. Such a key is refused by length.
#[test]
fn a_forged_one_block_mac_key_is_refused() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = std::str::from_utf8(figure!("6")).unwrap();
    let original = "ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX";
    assert!(text.contains(original));
    let raw = b64.decode(original).unwrap();
    let (c1, c2) = (&raw[16..32], &raw[32..48]);
    let mac_key = hex::decode("1122334455667788990011223344556677889900").unwrap();
    let mut p2 = mac_key[16..].to_vec();
    p2.extend([12u8; 12]);
    let chosen = b"evil!";
    let mut p_new = chosen.to_vec();
    p_new.extend([11u8; 11]);
    // D(C2) = C1 xor P2; the forged IV makes C2 decrypt to `p_new`.
    let iv: Vec<u8> = (0..16).map(|i| c1[i] ^ p2[i] ^ p_new[i]).collect();
    let forged = b64.encode([iv.as_slice(), c2].concat());
    let altered = text.replace(original, &forged);
    let err = parse(altered.as_bytes(), &key("12345678901234567890123456789012")).unwrap_err();
    assert!(
        err.to_string()
            .contains("the MAC key decrypts to 5 bytes, which a file altered to forge one"),
        "{err}"
    );
}

/// The MAC key lengths refused: those a forger could make a file carry (see
/// `check_mac_key_length`); the usual ones pass.
#[test]
fn mac_key_lengths_a_forger_could_reach_are_refused() {
    for len in [1, 15, 25, 28, 29, 30, 31, 41, 45, 47] {
        let err = envelope::check_mac_key_length(len).unwrap_err().to_string();
        // Also what a wrong key gives about once in 256: named as such.
        assert!(err.contains("wrong key or passphrase"), "{len}: {err}");
    }
    for len in [16, 20, 24, 32, 40, 48, 64] {
        assert!(envelope::check_mac_key_length(len).is_ok(), "{len}");
    }
}

#[test]
fn figure6_altered_ciphertext_fails_the_mac_before_decryption() {
    let text = std::str::from_utf8(figure!("6")).unwrap();
    // Flip one character of the secret's CipherValue (after the IV).
    let altered = text.replace("AAECAwQFBgcICQoLDA0OD+cI", "AAECAwQFBgcICQoLDA0OD+cJ");
    assert_ne!(altered, text);
    let err = parse(altered.as_bytes(), &key("12345678901234567890123456789012")).unwrap_err();
    assert!(err.to_string().contains("ValueMAC"), "{err}");
}

#[test]
fn figure7_pbkdf2_passphrase() {
    assert_eq!(
        need(figure!("7")).unwrap(),
        Need::Passphrase {
            name: Some("My Password 1".into())
        }
    );
    let e = parse(
        figure!("7"),
        &Decryption::Passphrase(Secret::from("qwerty")),
    )
    .unwrap();
    let t = tokens(&e)[0];
    assert_eq!(t.token.secret.expose(), RFC_SECRET);
    assert_eq!(t.extra.manufacturer.as_deref(), Some("TokenVendorAcme"));
    // The derived key given directly works too (RFC: 651e63cd57008476af1ff6422cd02e41).
    let e = parse(figure!("7"), &key("651e63cd57008476af1ff6422cd02e41")).unwrap();
    assert_eq!(tokens(&e)[0].token.secret.expose(), RFC_SECRET);
    let err = parse(
        figure!("7"),
        &Decryption::Passphrase(Secret::from("qwertz")),
    )
    .unwrap_err();
    assert!(matches!(err, ImportError::WrongKey(_)), "{err}");
}

#[test]
fn figure8_asymmetric_is_refused_clearly() {
    let err = parse(figure!("8"), &Decryption::None).unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[test]
fn figure9_signed_file_reads() {
    let e = parse(figure!("9"), &Decryption::None).unwrap();
    let t = tokens(&e)[0];
    assert_eq!((t.token.serial.as_str(), t.token.digits), ("0755225266", 6));
    assert_eq!(t.token.secret.expose(), RFC_SECRET);
}

#[test]
fn figure10_bulk_with_validity_dates() {
    let e = parse(figure!("10"), &Decryption::None).unwrap();
    let t = tokens(&e);
    let serials: Vec<_> = t.iter().map(|t| t.token.serial.as_str()).collect();
    assert_eq!(serials, ["654321", "123456", "9999999", "9999999"]);
    assert!(t.iter().all(|t| t.token.secret.expose() == RFC_SECRET));
    // 2006-05-01T00:00:00Z .. 2006-05-31T00:00:00Z
    assert_eq!(t[0].extra.valid_from, Some(1_146_441_600));
    assert_eq!(t[0].extra.valid_until, Some(1_149_033_600));
}

/// xs:dateTime's 24:00:00 is the next day's midnight; RFC 3339, which reads the rest, has
/// no hour 24.
#[test]
fn an_expiry_at_24_00_is_the_next_midnight() {
    let at = |s: &str| date(Some(s.to_string()), "ExpiryDate");
    // 2028-01-01T00:00:00Z
    for s in [
        "2027-12-31T24:00:00Z",
        "2027-12-31T24:00:00",
        "2027-12-31T24:00:00.000Z",
        "2028-01-01T00:00:00Z",
    ] {
        assert_eq!(at(s).unwrap(), Some(1_830_297_600), "{s}");
    }
    assert_eq!(
        at("2027-12-31T24:00:00+01:00").unwrap(),
        Some(1_830_297_600 - 3600)
    );
    for s in [
        "2027-12-31T24:00:01Z",
        "2027-12-31T24:00:00.5Z",
        "2027-12-31T25:00:00Z",
    ] {
        let err = format!("{:?}", at(s).unwrap_err());
        assert!(err.contains("is not an xs:dateTime"), "{s}: {err}");
    }
}

#[test]
fn not_pskc_is_refused() {
    assert!(parse(b"<html/>", &Decryption::None).is_err());
    assert!(parse(b"<KeyContainer", &Decryption::None).is_err());
    assert!(parse(&[0xff, 0xfe, 0x3c], &Decryption::None).is_err());
}

/// A container of no `<KeyPackage>` is refused by name, before a key is asked for; one
/// of `<Device>` elements (the pre-RFC 6030 draft format) is named as that.
#[test]
fn a_file_without_key_packages_says_so() {
    let draft = "<?xml version=\"1.0\"?>\n\
        <KeyContainer xmlns=\"urn:ietf:params:xml:ns:keyprov:container:1.0\" version=\"1.0\">\n\
        <EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/>\n\
        <Device>\n<DeviceId><SerialNo>0950380269</SerialNo></DeviceId>\n\
        <Key KeyAlgorithm=\"http://www.ietf.org/keyprov/pskc#hotp\" KeyId=\"0950380269\">\n\
        <Data Name=\"SECRET\"><Value>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</Value></Data>\n\
        </Key>\n</Device>\n</KeyContainer>\n";
    for e in [
        parse(draft.as_bytes(), &Decryption::None).unwrap_err(),
        need(draft.as_bytes()).unwrap_err(),
    ] {
        assert_eq!(
            e.to_string(),
            "no <KeyPackage> elements, but <Device> elements (the first on line 4): that is \
             the pre-RFC 6030 draft format (draft-hoyer-keyprov), which radmfa does not read; \
             export the tokens as RFC 6030 PSKC"
        );
    }
    let empty = b"<KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>";
    assert_eq!(
        parse(empty, &Decryption::None).unwrap_err().to_string(),
        "no <KeyPackage> elements in the <KeyContainer>: no key to import"
    );
}

/// A KeyPackage with no Key (a DeviceInfo alone) is a problem naming it and its line; the
/// file's other packages are read.
#[test]
fn a_key_package_without_a_key_is_named() {
    let text = String::from_utf8(figure!("2").to_vec())
        .unwrap()
        .replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=")
        .replace(
            "    <KeyPackage>",
            "    <KeyPackage>\n<DeviceInfo><SerialNo>X1</SerialNo></DeviceInfo>\n\
             </KeyPackage>\n    <KeyPackage>",
        );
    let e = parse(text.as_bytes(), &Decryption::None).unwrap();
    assert_eq!(tokens(&e).len(), 1, "{e:?}");
    let Entry::Invalid(p) = &e[0] else {
        panic!("{:?}", e[0])
    };
    assert_eq!(
        p.to_string(),
        "KeyPackage 1 (line 10): no <Key> in it: nothing to import"
    );
}

/// Encrypted integers as python-pskc writes them: shortest unsigned big-endian bytes (200
/// is C8, once read as -56), and a negative TimeDrift only in a full 8 bytes (which
/// python-pskc cannot write). Bytes that are all ASCII digits read two ways (python-pskc
/// writes 50 as "2" and reads it back as 2): refused, naming both readings.
#[test]
fn encrypted_integers_read_as_python_pskc_reads_them() {
    let int = |name: &str, b: &[u8]| decrypted_int(name, b).map_err(ValueError::message);
    assert_eq!(int("Counter", &[0xc8]), Ok(200));
    assert_eq!(int("TimeDrift", &[0xc8]), Ok(200));
    assert_eq!(int("Counter", &[0x01, 0x00]), Ok(256));
    assert_eq!(int("Counter", &[0xff; 8]), Ok(i128::from(u64::MAX)));
    assert_eq!(int("TimeDrift", &[0xff, 0xff, 0xff, 0xfc]), Ok(0xffff_fffc));
    assert_eq!(
        int(
            "TimeDrift",
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc]
        ),
        Ok(-4)
    );
    assert_eq!(
        int("Counter", b"298507123"),
        Ok(298_507_123),
        "9 digits: only text"
    );
    for (digits, bytes, text) in [(&b"0"[..], 48, 0), (b"2", 50, 2), (b"10", 12592, 10)] {
        let said = int("Counter", digits).unwrap_err();
        assert!(
            said.contains(&format!(
                "reads as {bytes} (its bytes) or as {text} (its text"
            )),
            "{said}"
        );
    }
    for bad in [&[][..], &[1; 9]] {
        assert_eq!(
            int("Counter", bad),
            Err("Counter is not 1 to 8 bytes long".into())
        );
    }
}

/// In an encrypted file every seed must be encrypted: a Secret put there in plain text (or
/// beside its encrypted value) would be the seed of whoever altered the file.
#[test]
fn a_plain_secret_in_an_encrypted_file_is_refused() {
    let text = std::str::from_utf8(figure!("6")).unwrap();
    let start = text.find("<EncryptedValue>").unwrap();
    let end = text.find("</ValueMAC>").unwrap() + "</ValueMAC>".len();
    let plain = format!(
        "{}<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue>{}",
        &text[..start],
        &text[end..]
    );
    let both = text.replace(
        "<EncryptedValue>",
        "<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue><EncryptedValue>",
    );
    for (what, altered) in [("plain", plain), ("both", both)] {
        let e = parse(altered.as_bytes(), &key("12345678901234567890123456789012")).unwrap();
        assert!(tokens(&e).is_empty(), "{what}");
        match &e[0] {
            Entry::Invalid(p) | Entry::InvalidToken(p, _) => {
                assert!(p.message.starts_with("Secret: "), "{what}: {p}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // Even with every value made plain, the file still names its key: a key is needed, and
    // the plain seed refused.
    let text = std::str::from_utf8(figure!("6")).unwrap();
    let start = text.find("<EncryptedValue>").unwrap();
    let end = text.find("</ValueMAC>").unwrap() + "</ValueMAC>".len();
    let all_plain = format!(
        "{}<PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue>{}",
        &text[..start],
        &text[end..]
    );
    assert!(matches!(
        parse(all_plain.as_bytes(), &Decryption::None),
        Err(ImportError::KeyNeeded(_))
    ));
}

/// A value's error names its element, and a Luhn check digit is refused by name.
#[test]
fn value_errors_name_the_element_and_check_digits_are_refused() {
    let text = String::from_utf8(figure!("3").to_vec()).unwrap();
    let empty_counter = text.replace(
        "<Counter>\n                    <PlainValue>0</PlainValue>\n                </Counter>",
        "<Counter></Counter>",
    );
    assert_ne!(empty_counter, text, "figure 3's Counter changed");
    let e = parse(empty_counter.as_bytes(), &Decryption::None).unwrap();
    match &e[0] {
        Entry::Invalid(p) | Entry::InvalidToken(p, _) => assert!(
            p.message == "Counter: no PlainValue or EncryptedValue",
            "{p}"
        ),
        other => panic!("{other:?}"),
    }
    let luhn = text.replace(
        "Encoding=\"DECIMAL\"/>",
        "Encoding=\"DECIMAL\" CheckDigits=\"true\"/>",
    );
    assert_ne!(luhn, text);
    let e = parse(luhn.as_bytes(), &Decryption::None).unwrap();
    assert!(
        matches!(&e[0], Entry::Invalid(p) | Entry::InvalidToken(p, _) if p.message.contains("CheckDigits")),
        "{:?}",
        e[0]
    );
}

/// An element RFC 6030 allows once, repeated, is refused by name and line: taking the
/// first would drop the second without a word (a second `<Data>` holding the Counter would
/// leave the counter at 0).
#[test]
fn a_repeated_element_is_refused_naming_it_and_its_line() {
    let text = String::from_utf8(figure!("3").to_vec()).unwrap();
    let counter =
        "<Counter>\n                    <PlainValue>0</PlainValue>\n                </Counter>";
    assert!(text.contains(counter), "figure 3's Counter changed");
    let twice = text.replace(
        counter,
        &format!("{counter}\n                <Counter><PlainValue>7</PlainValue></Counter>"),
    );
    let e = parse(twice.as_bytes(), &Decryption::None).unwrap();
    let line = twice
        .lines()
        .position(|l| l.contains("<PlainValue>7</PlainValue>"))
        .unwrap()
        + 1;
    match &e[0] {
        Entry::Invalid(p) | Entry::InvalidToken(p, _) => assert_eq!(
            p.message,
            format!("<Data> has more than one <Counter> (the second on line {line}); it takes one"),
        ),
        other => panic!("{other:?}"),
    }
    let serial = text.find("<SerialNo>").expect("figure 3 has a SerialNo");
    let two_devices = format!(
        "{}<SerialNo>x</SerialNo>{}",
        &text[..serial],
        &text[serial..]
    );
    let e = parse(two_devices.as_bytes(), &Decryption::None).unwrap();
    assert!(
        matches!(&e[0], Entry::Invalid(p) | Entry::InvalidToken(p, _) if p.message.starts_with("<DeviceInfo> has more than one <SerialNo>")),
        "{:?}",
        e[0]
    );
    // Figure 10's three packages, each with its own DeviceInfo, are not repeats.
    let e = parse(figure!("10"), &Decryption::None).unwrap();
    assert!(e.iter().all(|e| matches!(e, Entry::Token(_))), "{e:?}");
}

/// Line numbers come from one index of the file, and are right.
#[test]
fn line_numbers_point_at_each_key_package() {
    let pkg = "<KeyPackage><Key Id=\"x\" Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:hotp\"><Data><Secret><PlainValue>MTIzNA==</PlainValue></Secret></Data></Key></KeyPackage>";
    let text = format!(
        "<?xml version=\"1.0\"?>\n<KeyContainer Version=\"1.0\" xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\">\n{pkg}\n\n{pkg}{pkg}\n</KeyContainer>\n"
    );
    let e = parse(text.as_bytes(), &Decryption::None).unwrap();
    let origins: Vec<String> = e
        .iter()
        .filter_map(|e| match e {
            Entry::Invalid(p) | Entry::InvalidToken(p, _) => Some(p.origin.clone()),
            Entry::Note(_) => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        origins,
        [
            "KeyPackage 1 (line 3, serial x)",
            "KeyPackage 2 (line 5, serial x)",
            "KeyPackage 3 (line 5, serial x)"
        ]
    );
    // No SerialNo anywhere: one note says whose Id became the serial, not one per key.
    let notes: Vec<String> = e
        .iter()
        .filter_map(|e| match e {
            Entry::Note(p) => Some(p.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        notes,
        [
            "KeyPackage 1 (line 3, serial x): no DeviceInfo/SerialNo (and 2 more key(s)): the \
          serial is the Key's Id attribute; check that it is what is printed on the token"
        ]
    );
}

/// A vendor's own spelling of an OATH algorithm is an error, not a key left out quietly.
#[test]
fn an_unknown_oath_algorithm_uri_is_an_error() {
    let text = String::from_utf8(figure!("2").to_vec()).unwrap();
    let text = text
        .replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=")
        .replace("pskc:hotp", "pskc:hotp-sha256");
    let e = parse(text.as_bytes(), &Decryption::None).unwrap();
    assert!(
        matches!(&e[0], Entry::Invalid(p) | Entry::InvalidToken(p, _) if p.message.contains("hotp-sha256")),
        "{:?}",
        e[0]
    );
}

/// A device with an HOTP key and an OCRA key (the algorithm-profile spelling, whose suite
/// names HOTP): the HOTP token imports and the OCRA key is left out with a note. The OCRA
/// key was taken for a misspelt HOTP URI, refused, and took its device's HOTP key with it.
#[test]
fn an_ocra_key_beside_an_hotp_key_is_left_out() {
    let text = String::from_utf8(figure!("2").to_vec()).unwrap();
    let text = text.replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=");
    let hotp_key = &text[text.find("<Key ").unwrap()..text.find("</Key>").unwrap() + 6];
    let ocra_key = hotp_key.replace("12345678", "12345679").replace(
        "urn:ietf:params:xml:ns:keyprov:pskc:hotp",
        "urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1:HOTP-SHA1-6:QN08",
    );
    let text = text.replace("</Key>", &format!("</Key>\n{ocra_key}"));
    let e = parse(text.as_bytes(), &Decryption::None).unwrap();
    assert_eq!(tokens(&e).len(), 1, "{e:?}");
    assert!(
        matches!(&e[1], Entry::Ignored(p) if p.message.contains("OCRA-1")),
        "{e:?}"
    );
}

/// A Key with a secret and no Algorithm is an error naming why: left out with a note, a
/// token went missing with the import's exit status 0.
#[test]
fn a_secret_without_an_algorithm_is_an_error() {
    let text = String::from_utf8(figure!("2").to_vec()).unwrap();
    let text = text
        .replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=")
        .replace(
            "\n            Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:hotp\"",
            "",
        );
    assert!(!text.contains("Algorithm="), "{text}");
    let e = parse(text.as_bytes(), &Decryption::None).unwrap();
    assert!(
        matches!(&e[0], Entry::Invalid(p) | Entry::InvalidToken(p, _) if p.message.contains("no Algorithm")),
        "{e:?}"
    );
}

#[test]
fn a_userid_dn_gives_a_login_name_or_no_user() {
    use super::user_from_userid;
    assert_eq!(user_from_userid("jsmith").as_deref(), Some("jsmith"));
    assert_eq!(
        user_from_userid("UID=jsmith,DC=example-transactions,DC=net").as_deref(),
        Some("jsmith")
    );
    assert_eq!(
        user_from_userid("sAMAccountName=JSmith, OU=Staff").as_deref(),
        Some("jsmith")
    );
    // Display names, as Active Directory's CN is: the token stays unassigned rather than
    // going to "smith\" or "john smith".
    for display in [
        "CN=Smith\\, John,OU=Staff,DC=corp,DC=example",
        "CN=John Smith,OU=Staff,DC=corp,DC=example",
        "CN=\"Smith, John\",OU=Staff",
        "CN=,OU=Staff",
        "OU=Staff,DC=corp",
    ] {
        assert_eq!(user_from_userid(display), None, "{display}");
    }
}

/// Figure 5's problems: what an import of `text` refused, as "origin: message".
fn problems(text: &str) -> Vec<String> {
    parse(text.as_bytes(), &Decryption::None)
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Entry::Invalid(p) | Entry::InvalidToken(p, _) => Some(p.to_string()),
            _ => None,
        })
        .collect()
}

/// RFC 6030 §5: a policy the server does not enforce makes the key unusable. Figure 5's
/// PIN is checked by the device ("Local") and imports; with "Prepend" the server would have
/// to check the PIN typed before the code, and with NumberOfTransactions limit its uses:
/// both keys were imported as plain tokens, the rule dropped without a word.
#[test]
fn a_policy_radmfa_does_not_enforce_refuses_the_key() {
    let fig5 = String::from_utf8(figure!("5").to_vec()).unwrap();
    assert!(problems(&fig5).is_empty(), "{:?}", problems(&fig5));
    let prepend = fig5.replace("PINUsageMode=\"Local\"", "PINUsageMode=\"Prepend\"");
    assert_eq!(
        problems(&prepend),
        [
            "KeyPackage 1 (line 10, serial 987654321): <PINPolicy> in <Policy> (line 34) has \
          PINUsageMode=\"Prepend\": only a PIN the device checks itself (\"Local\") needs \
          nothing of radmfa; RFC 6030 §5 makes a key with a policy the server does not \
          enforce unusable, so it is not imported"
        ]
    );
    let cases = [
        (
            "<KeyUsage>OTP</KeyUsage>",
            "<KeyUsage>OTP</KeyUsage>\n<NumberOfTransactions>5</NumberOfTransactions>",
            "<NumberOfTransactions> in <Policy> (line 38) is a rule radmfa does not enforce",
        ),
        (
            "<KeyUsage>OTP</KeyUsage>",
            "<KeyUsage>CR</KeyUsage><KeyUsage>Unlock</KeyUsage>",
            "<KeyUsage> in <Policy> (line 37) does not allow OTP",
        ),
        (
            "PINUsageMode=\"Local\"",
            "PINUsageMode=\"Local\" Extra=\"1\"",
            "<PINPolicy> in <Policy> (line 34) has an unknown attribute Extra",
        ),
        (
            "PINUsageMode=\"Local\"",
            "",
            "<PINPolicy> in <Policy> (line 34) has no PINUsageMode",
        ),
    ];
    for (from, to, expected) in cases {
        let p = problems(&fig5.replace(from, to));
        assert!(p.len() == 1 && p[0].contains(expected), "{to}: {p:?}");
    }
    // Several usages, one of them OTP: the key may be used for OTP.
    let both = fig5.replace(
        "<KeyUsage>OTP</KeyUsage>",
        "<KeyUsage>CR</KeyUsage><KeyUsage>OTP</KeyUsage>",
    );
    assert!(problems(&both).is_empty(), "{:?}", problems(&both));
}

/// A Key's Id with spaces around it is the serial without them, as a SerialNo is: kept,
/// `Id=" OK-1 "` made a serial apart from `OK-1`.
#[test]
fn a_key_id_is_trimmed() {
    // Figure 2 has no DeviceInfo: its Key's Id is the serial.
    let text = String::from_utf8(figure!("2").to_vec())
        .unwrap()
        .replace("MTIzNA==", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=");
    let padded = text.replace("<Key Id=\"12345678\"", "<Key Id=\" OK-1 \"");
    assert_ne!(padded, text);
    let e = parse(padded.as_bytes(), &Decryption::None).unwrap();
    assert_eq!(tokens(&e)[0].token.serial, "OK-1", "{e:?}");
}

/// A secret in the wrong element (a vendor's export with shifted fields) is not printed by
/// the element's error, as the CSV reader's errors do not print one: values longer than a
/// secret's shortest spelling are described, not quoted. Short values, URIs and dates
/// still are.
#[test]
fn a_secret_in_the_wrong_element_is_not_printed() {
    const SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let text = String::from_utf8(figure!("3").to_vec()).unwrap();
    let counter = "<PlainValue>0</PlainValue>";
    let length = "Length=\"8\"";
    let encoding = "Encoding=\"DECIMAL\"";
    let uri = "Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:hotp\"";
    for f in [counter, length, encoding, uri] {
        assert!(text.contains(f), "figure 3 changed: {f}");
    }
    let shifted = [
        text.replace(counter, &format!("<PlainValue>{SEED}</PlainValue>")),
        text.replace(
            counter,
            "<PlainValue>3132333435363738393031323334353637</PlainValue>",
        ),
        text.replace(length, &format!("Length=\"{SEED}\"")),
        text.replace(encoding, &format!("Encoding=\"{SEED}\"")),
        text.replace(uri, &format!("Algorithm=\"{SEED}hotp\"")),
        text.replace(
            uri,
            &format!("Algorithm=\"otpauth://hotp/x?secret={SEED}\""),
        ),
        text.replace(
            "</AlgorithmParameters>",
            &format!("<Suite>{SEED}</Suite></AlgorithmParameters>"),
        ),
        text.replace(
            "<Issuer>Issuer</Issuer>",
            &format!("<Issuer>Issuer</Issuer><Policy><StartDate>{SEED}</StartDate></Policy>"),
        ),
    ];
    for file in &shifted {
        let e = parse(file.as_bytes(), &Decryption::None).unwrap();
        let message = match &e[0] {
            Entry::Invalid(p) | Entry::InvalidToken(p, _) => p.message.clone(),
            other => panic!("{other:?}"),
        };
        assert!(
            !message.contains("JBSWY3DP") && !message.contains("31323334"),
            "{message}"
        );
        assert!(message.contains("-character value, not shown"), "{message}");
    }
    // A URI and a date are still quoted: they hold a ':', which no secret's spelling has.
    let vendor_uri = text.replace(uri, "Algorithm=\"urn:example:vendor:hotp-sha256\"");
    let e = parse(vendor_uri.as_bytes(), &Decryption::None).unwrap();
    assert!(
        format!("{:?}", e[0]).contains("\\\"urn:example:vendor:hotp-sha256\\\""),
        "{:?}",
        e[0]
    );
    let bad_date = text.replace(
        "<Issuer>Issuer</Issuer>",
        "<Issuer>Issuer</Issuer><Policy><StartDate>2026-13-01T00:00:00Z</StartDate></Policy>",
    );
    let e = parse(bad_date.as_bytes(), &Decryption::None).unwrap();
    assert!(
        format!("{:?}", e[0]).contains("2026-13-01T00:00:00Z"),
        "{:?}",
        e[0]
    );
}

/// A MAC key under a cipher radmfa does not have is refused as the file's make, not as a
/// wrong key: the admin holding the right key is not sent to retype it.
#[test]
fn a_mac_key_under_an_unknown_cipher_is_not_called_a_wrong_key() {
    let text = String::from_utf8(figure!("6").to_vec()).unwrap();
    let mac_cipher = "<MACKey>\n            <xenc:EncryptionMethod\n            \
                      Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"/>";
    assert!(text.contains(mac_cipher), "figure 6 changed");
    let des = text.replacen(
        mac_cipher,
        &mac_cipher.replace("aes128-cbc", "tripledes-cbc"),
        1,
    );
    let err = parse(des.as_bytes(), &key("12345678901234567890123456789012")).unwrap_err();
    assert!(matches!(err, ImportError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("tripledes-cbc"), "{err}");
    assert!(!err.to_string().contains("wrong key"), "{err}");
}

/// A Latin-1 file is a PSKC file in another encoding: said so, with the line and what it
/// declares, not "not a PSKC file: … from index 192".
#[test]
fn a_latin1_file_is_told_to_be_saved_as_utf8() {
    let text = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<KeyContainer Version=\"1.0\" \
                xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\">\n<KeyPackage><DeviceInfo>\
                <Manufacturer>Soci\u{e9}t\u{e9}</Manufacturer></DeviceInfo></KeyPackage>\n\
                </KeyContainer>\n";
    let latin1: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
    let err = parse(&latin1, &Decryption::None).unwrap_err().to_string();
    assert_eq!(
        err,
        "the file is not UTF-8 (line 3, and it says encoding=\"iso-8859-1\"); radmfa reads \
         PSKC files as UTF-8: save it as UTF-8 (`iconv -f ISO-8859-1 -t UTF-8`), and nothing \
         else changes"
    );
}
