//! Unit tests of `csv.rs`.

use super::*;

fn tokens(text: &str) -> Vec<Result<ImportedToken, String>> {
    parse(text.as_bytes(), &FileDefaults::default())
        .unwrap()
        .into_iter()
        .map(|e| match e {
            Entry::Token(t) => Ok(*t),
            Entry::Invalid(p) | Entry::InvalidToken(p, _) | Entry::Ignored(p) | Entry::Note(p) => {
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
        let text = format!("serial{sep}secret{sep}interval\nSN1{sep}{B32}{sep}30\nSN1,{B32},30\n");
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

/// A quote never closed was read to the end of the line (`"alice` became alice), and a
/// field quoted across two lines lost its second half: each is refused by line, and a
/// properly quoted field with a doubled inner quote still reads.
#[test]
fn a_quote_never_closed_is_refused() {
    let text = format!(
        "serial,key,period,user\nC-30,{B32},30,\"alice\nC-31,{B32},30,\"alice\nbob\"\n\
         C-32,{B32},30,\"o\"\"brien\"\n"
    );
    let got = tokens(&text);
    let errors: Vec<&String> = got.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 3, "{got:?}");
    for (e, line) in errors.iter().zip([2, 3]) {
        assert!(
            e.starts_with(&format!("line {line}:")) && e.contains("never closed"),
            "{e}"
        );
    }
    // The second half, `bob"`, is a row of its own (its quote a character), refused too.
    assert!(errors[2].starts_with("line 4:"), "{}", errors[2]);
    let ok: Vec<_> = got.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 1, "{got:?}");
    assert_eq!(ok[0].token.user.as_deref(), Some("o\"brien"));
    // A quote inside an unquoted field is a character (a model `OTP c200 6"`), and does
    // not make a quote opened after it look closed.
    assert!(!quote_left_open("HW-1,key,hotp,alice,Feitian,OTP c200 6\""));
    assert!(quote_left_open("C-1,key,30,5\"x,\"alice"));
    assert!(!quote_left_open("a,\"b,\"\"c\"\"\",d"));
    assert!(quote_left_open("a,\"b\"\""));
    let text = format!(
        "serial,key,type,user,manufacturer,model\nHW-1,{HEX},hotp,alice,Feitian,OTP c200 6\"\n"
    );
    let got = tokens(&text);
    assert!(got[0].is_ok(), "{got:?}");
}

/// A PSKC algorithm URI in the algorithm column names the type: it must agree with a type
/// column; a header cell that could be a seed is not quoted in the error.
#[test]
fn pskc_uris_name_the_type_and_seed_like_header_cells_stay_hidden() {
    let uri = "urn:ietf:params:xml:ns:keyprov:pskc:totp";
    let t = tokens(&format!(
        "serial,secret,type,algorithm\nU1,{HEX},hotp,{uri}\n"
    ));
    let e = t[0].as_ref().unwrap_err();
    assert!(e.contains("disagree"), "{e}");
    let t = tokens(&format!("serial,secret,algorithm\nU2,{HEX},{uri}\n"));
    let u2 = t[0].as_ref().unwrap();
    assert_eq!(u2.token.kind, TokenKind::Totp);
    assert_eq!(u2.token.secret.expose(), b"12345678901234567890");
    let t = tokens(&format!("serial,secret,{B32}\nU3,{B32},x\n"));
    let e = t[0].as_ref().unwrap_err();
    assert!(
        e.contains("unknown column (a 32-character value, not shown) (column 3)")
            && !e.contains(B32),
        "{e}"
    );
}
