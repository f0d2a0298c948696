// Fuzz bodies shared by the cargo-fuzz targets (fuzz/fuzz_targets/) and the stable-toolchain
// corpus test (tests/fuzz_corpus.rs), which `include!` this file. Each takes arbitrary bytes
// and panics only on a real bug.

/// decode → reply → verify → parse must agree (the library's own round-trip check); also
/// on the input re-signed, so that mutations of signed packets get past the check.
pub fn packet_roundtrip(data: &[u8]) {
    radmfa::radius::request::fuzz_roundtrip(data);
    if let Some(signed) = resign(data) {
        radmfa::radius::request::fuzz_roundtrip(&signed);
    }
}

/// `data` framed by its Length field with its one 18-octet Message-Authenticator recomputed
/// for the fuzz secret; None if it has not exactly one. The fuzzer cannot forge an HMAC, so
/// without this every mutation of a signed seed fails verification, and what lies behind
/// the check (Proxy-State echoes, EAP, State, the reply encoder) only ever sees the seeds.
pub fn resign(data: &[u8]) -> Option<Vec<u8>> {
    resign_with(data, b"fuzz-secret")
}

/// [`resign`] with another shared secret (the robustness tests sign for a live server).
pub fn resign_with(data: &[u8], secret: &[u8]) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?]));
    if len < 20 || len > data.len() {
        return None;
    }
    let mut pkt = data[..len].to_vec();
    let (mut at, mut i) = (None, 20);
    while i < len {
        let l = usize::from(*pkt.get(i + 1)?);
        if l < 2 || i + l > len {
            return None;
        }
        if pkt[i] == 80 {
            if l != 18 || at.is_some() {
                return None;
            }
            at = Some(i + 2);
        }
        i += l;
    }
    let at = at?;
    pkt[at..at + 16].fill(0);
    let mac = radmfa::radius::crypto::message_authenticator(&pkt, secret);
    pkt[at..at + 16].copy_from_slice(&mac);
    Some(pkt)
}

/// Message-Authenticator and attribute handling:
/// - whatever decodes under "require Message-Authenticator" carries one;
/// - a decoded packet that carries one stops decoding when any octet inside Length changes;
/// - our reply checks (strict and lenient) and the reply parser never panic on any input.
pub fn message_authenticator(data: &[u8]) {
    use radmfa::client::verify::{verify, Verify};
    use radmfa::radius::client::parse_reply;
    use radmfa::radius::crypto::verify_reply;
    use radmfa::radius::decode_request;
    const SECRET: &[u8] = b"fuzz-secret";

    let auth: [u8; 16] = core::array::from_fn(|i| data.get(4 + i).copied().unwrap_or(0));
    let _ = verify_reply(data, &auth, SECRET);
    let _ = verify(Verify::Lenient, data, &auth, SECRET);
    let _ = parse_reply(data);

    if let Ok(req) = decode_request(data, SECRET, true) {
        assert!(
            req.has_message_authenticator,
            "required but absent, yet decoded"
        );
    }
    tamper_check(data);
    if let Some(signed) = resign(data) {
        tamper_check(&signed);
    }
}

/// A decoded packet that carries a Message-Authenticator stops decoding when any octet
/// inside Length changes.
fn tamper_check(data: &[u8]) {
    use radmfa::radius::decode_request;
    const SECRET: &[u8] = b"fuzz-secret";
    let Ok(req) = decode_request(data, SECRET, false) else {
        return;
    };
    if !req.has_message_authenticator {
        return;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    // One flipped octet, chosen by the input, in the authenticated part (not the Length field,
    // which changes framing rather than content).
    let at = (data.len() * 31 + 7) % len;
    if at == 2 || at == 3 {
        return;
    }
    let mut tampered = data.to_vec();
    tampered[at] ^= 0x40;
    // With the attribute required: flipping its own Type octet turns the packet into one
    // without Message-Authenticator, which only a legacy client entry would take.
    assert!(
        decode_request(&tampered, SECRET, true).is_err(),
        "octet {at} changed and the Message-Authenticator still verified"
    );
}

/// A request built from fuzzed fields decodes back to the same fields.
pub fn builder_roundtrip(data: &[u8]) {
    use radmfa::radius::client::AccessRequestBuilder;
    use radmfa::radius::decode_request;
    if data.len() < 3 {
        return;
    }
    // A non-empty secret of up to 8 octets taken from the input, the rest split into fields.
    let secret = &data[..(1 + data[0] as usize % 8).min(data.len() - 1)];
    let rest = &data[secret.len()..];
    let (name, pw) = rest.split_at(rest.len() / 2);
    // At most 80 octets: each invalid one becomes a 3-octet U+FFFD, and 253 is the limit.
    let name = String::from_utf8_lossy(&name[..name.len().min(80)]).into_owned();
    let pw = &pw[..pw.len().min(128)];
    let (raw, auth) = AccessRequestBuilder::new(data[1], &name)
        .password(pw)
        .state(&data[..data.len().min(40)])
        .proxy_state(b"ps")
        .build(secret);
    let req = decode_request(&raw, secret, true).expect("our own request decodes");
    assert_eq!(req.authenticator, auth);
    // Less the trailing NULs some NASes end strings with (`Request::user_name`).
    assert_eq!(
        req.user_name().as_deref(),
        Some(name.trim_end_matches('\0'))
    );
    assert_eq!(req.proxy_states(), vec![b"ps".to_vec()]);
    // RFC 2865 §5.2 pads with NULs, so the decoder stops at the first NUL: only passwords
    // without one come back whole.
    if !pw.is_empty() && !pw.contains(&0) {
        assert_eq!(req.user_password(secret).expect("password").expose(), pw);
    }
}

/// The config loader never panics; it returns a value or an error naming the problem.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = radmfa::config::Config::parse(text, std::path::Path::new("/fuzz/radmfa.toml")) {
        assert!(!e.to_string().is_empty());
    }
}

/// CSV token files, as `radmfa token import` reads them (format detected): any bytes give
/// entries (tokens, or problems naming a line), never a panic; every token returned passed
/// the shared checks. Also with 8 digits and hex keys forced, the other CSV defaults.
pub fn import_csv(data: &[u8]) {
    use radmfa::import::{check_token, csv, keys::KeyEncoding, FileDefaults, Decryption, Entry};
    let forced = FileDefaults {
        digits: 8,
        encoding: KeyEncoding::Hex,
        ..FileDefaults::default()
    };
    for defaults in [FileDefaults::default(), forced] {
        // Past the problem or token limit the whole file is refused: nothing to check.
        let Ok(entries) = csv::parse(data, &defaults) else {
            continue;
        };
        for entry in entries {
            if let Entry::Token(t) = entry {
                assert!(check_token(&t.token, &t.extra).is_ok());
                assert!(t.origin.starts_with("line "));
            }
        }
    }
    if let Ok(entries) = radmfa::import::parse(data, None, &Decryption::None, &FileDefaults::default()) {
        for entry in entries {
            if let Entry::Token(t) = entry {
                assert!(check_token(&t.token, &t.extra).is_ok());
            }
        }
    }
}

/// PSKC (RFC 6030) files are outside input: any bytes give tokens or an error, never a
/// panic, a hang or unbounded memory (DTDs refused, size, node count and depth bounded).
/// Tried without a key and with a fixed AES-128 key, so the encrypted paths (MAC check,
/// CBC, key wrap) are reached too.
pub fn import_pskc(data: &[u8]) {
    use radmfa::import::{check_token, pskc, Decryption, Entry, FileDefaults};
    use radmfa::secret::Secret;
    let _ = pskc::need(data);
    for key in [Decryption::None, Decryption::Key(Secret::new(vec![0x42; 16]))] {
        if let Ok(entries) = pskc::parse(data, &key, &FileDefaults::default()) {
            for entry in entries {
                if let Entry::Token(t) = entry {
                    assert!(check_token(&t.token, &t.extra).is_ok());
                }
            }
        }
    }
}
