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
/// - a decoded request that carries one stops decoding when any of the octets
///   [`tamper_positions`] picks inside Length changes ([`tamper_check`]);
/// - our reply checks (strict and lenient) and the reply parser never panic on any input;
/// - the input made a reply and signed for it ([`resign_reply`]) passes exactly the reply
///   checks it should, and none of them once one picked octet changes, even with the
///   Response Authenticator forged again ([`reply_check`]).
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
    // The input's own authenticator field stands in for the Request Authenticator.
    if let Some(signed) = resign_reply(data, &auth) {
        reply_check(&signed, &auth);
    }
}

/// The offset of every attribute of a framed packet (`pkt.len()` is its Length), or None if
/// their lengths do not add up exactly.
fn attribute_offsets(pkt: &[u8]) -> Option<Vec<usize>> {
    let (mut out, mut i) = (Vec::new(), 20);
    while i < pkt.len() {
        let l = usize::from(*pkt.get(i + 1)?);
        if l < 2 || i + l > pkt.len() {
            return None;
        }
        out.push(i);
        i += l;
    }
    Some(out)
}

/// The octets of a framed packet to flip one at a time: Code, Identifier, one octet of the
/// Authenticator field, the first Message-Authenticator's Type and Length octets and the first
/// octet of its value, one octet of each attribute (of at most 8, spread over the list: the
/// first, the one after the Message-Authenticator and the last always among them) and three
/// octets anywhere. The choices come from a hash of the packet, so the fuzzer moves them by
/// changing it. Never octets 2 and 3: a changed Length field changes framing, not content.
fn tamper_positions(pkt: &[u8], attrs: &[usize]) -> Vec<usize> {
    // FNV-1a over the packet, then a SplitMix64 step per choice.
    let mut h = pkt.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut next = |n: usize| {
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let mut at = vec![0, 1, 4 + next(16)];
    let ma = attrs.iter().position(|&o| pkt[o] == 80);
    if let Some(m) = ma {
        let o = attrs[m];
        at.extend([o, o + 1]);
        if pkt[o + 1] > 2 {
            at.push(o + 2);
        }
    }
    let mut chosen: Vec<usize> = if attrs.len() <= 8 {
        (0..attrs.len()).collect()
    } else {
        let stride = attrs.len().div_ceil(5);
        let first = next(stride);
        let mut c: Vec<usize> = (first..attrs.len()).step_by(stride).collect();
        c.extend([0, attrs.len() - 1]);
        c.extend(ma.map(|m| m + 1).filter(|&m| m < attrs.len()));
        c
    };
    chosen.sort_unstable();
    chosen.dedup();
    for a in chosen {
        let o = attrs[a];
        at.push(o + next(usize::from(pkt[o + 1])));
    }
    for _ in 0..3 {
        at.push(next(pkt.len()));
    }
    at.retain(|&i| i != 2 && i != 3);
    at.sort_unstable();
    at.dedup();
    at
}

/// Whether changing octet `at` can leave the packet without a Message-Authenticator: it is
/// the Type octet of one (it is no longer one) or any attribute's Length octet (the list may
/// then walk differently and swallow the Message-Authenticator into another attribute).
fn can_drop_ma(pkt: &[u8], attrs: &[usize], at: usize) -> bool {
    attrs
        .iter()
        .any(|&o| at == o + 1 || (at == o && pkt[o] == 80))
}

/// A decoded request that carries a Message-Authenticator stops decoding when any octet
/// [`tamper_positions`] picks inside Length changes.
fn tamper_check(data: &[u8]) {
    use radmfa::radius::decode_request;
    const SECRET: &[u8] = b"fuzz-secret";
    let Ok(req) = decode_request(data, SECRET, false) else {
        return;
    };
    if !req.has_message_authenticator {
        return;
    }
    let pkt = &data[..usize::from(u16::from_be_bytes([data[2], data[3]]))];
    let attrs = attribute_offsets(pkt).expect("a decoded request walks");
    for at in tamper_positions(pkt, &attrs) {
        let mut tampered = data.to_vec();
        tampered[at] ^= 0x40;
        // With the attribute required: flipping its own Type octet turns the packet into one
        // without Message-Authenticator, which only a legacy client entry would take (and a
        // changed Length octet can hide it inside another attribute). Every other octet is
        // refused by the HMAC itself, so there not even a legacy entry may take it.
        let require = can_drop_ma(pkt, &attrs, at);
        assert!(
            decode_request(&tampered, SECRET, require).is_err(),
            "octet {at} changed and the Message-Authenticator still verified \
             (required: {require})"
        );
    }
}

/// `data` made an Access-Accept, -Reject or -Challenge answering a request whose Request
/// Authenticator is `req_auth`, signed for the fuzz secret: framed by its Length field, its
/// Code forced to 2, 3 or 11 if it is none of them, its Message-Authenticator (if it has
/// exactly one of 16 octets) and its Response Authenticator computed. None if Length or the
/// attribute lengths do not add up. The fuzzer cannot forge MD5 or HMAC-MD5, so without this
/// no mutated reply ever reaches the reply checks' success path.
pub fn resign_reply(data: &[u8], req_auth: &[u8; 16]) -> Option<Vec<u8>> {
    const SECRET: &[u8] = b"fuzz-secret";
    let len = usize::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?]));
    if !(20..=4096).contains(&len) || len > data.len() {
        return None;
    }
    let mut pkt = data[..len].to_vec();
    if !matches!(pkt[0], 2 | 3 | 11) {
        pkt[0] = [2, 3, 11][usize::from(pkt[0]) % 3];
    }
    let attrs = attribute_offsets(&pkt)?;
    // RFC 2869 §5.14 for replies: HMAC-MD5 over the reply with the Request Authenticator in
    // the authenticator field and the value zeroed (as radmfa's `encode_reply` computes it).
    pkt[4..20].copy_from_slice(req_auth);
    let mas: Vec<usize> = attrs.iter().copied().filter(|&o| pkt[o] == 80).collect();
    if let [o] = mas[..] {
        if pkt[o + 1] == 18 {
            pkt[o + 2..o + 18].fill(0);
            let mac = radmfa::radius::crypto::message_authenticator(&pkt, SECRET);
            pkt[o + 2..o + 18].copy_from_slice(&mac);
        }
    }
    seal_reply(&mut pkt, req_auth);
    Some(pkt)
}

/// Sets the RFC 2865 §3 Response Authenticator of a framed reply, with radmfa's own
/// `crypto::response_authenticator`.
fn seal_reply(pkt: &mut [u8], req_auth: &[u8; 16]) {
    pkt[4..20].copy_from_slice(req_auth);
    let ra = radmfa::radius::crypto::response_authenticator(pkt, b"fuzz-secret");
    pkt[4..20].copy_from_slice(&ra);
}

/// A reply signed by [`resign_reply`]:
/// - passes exactly the checks it should: `Lenient` if it has no Message-Authenticator or
///   one valid one anywhere, `Signed` only with one, `Strict` (and `verify_reply`) only with
///   one that is the first attribute; none with two of them or one not 16 octets long; and
///   the parser reads it;
/// - fails `Strict` and `Lenient` (so `Signed` too) once one octet [`tamper_positions`]
///   picks changes;
/// - with one valid Message-Authenticator, still fails them all when the Response
///   Authenticator is forged again for the changed octets (what an attacker with an MD5
///   collision can do, BlastRADIUS), unless the change may remove the Message-Authenticator:
///   then `Strict` and `Signed` still refuse it.
///
/// Once tampered, `Signed` is asked only where `Lenient` is not: it is `Lenient` plus the
/// requirement, so it refuses whatever `Lenient` refuses, and each call hashes the packet
/// twice (a fuzzing build is unoptimised).
fn reply_check(pkt: &[u8], req_auth: &[u8; 16]) {
    use radmfa::client::verify::{verify, Verify};
    use radmfa::radius::client::parse_reply;
    use radmfa::radius::crypto::verify_reply;
    const SECRET: &[u8] = b"fuzz-secret";
    const MODES: [Verify; 3] = [Verify::Strict, Verify::Lenient, Verify::Signed];

    let attrs = attribute_offsets(pkt).expect("resign_reply frames it");
    let mas: Vec<usize> = attrs.iter().copied().filter(|&o| pkt[o] == 80).collect();
    let one_ma = matches!(mas[..], [o] if pkt[o + 1] == 18);
    let first = one_ma && mas[0] == 20;
    let expect = |mode: Verify| match mode {
        Verify::Strict => first,
        Verify::Lenient => mas.is_empty() || one_ma,
        Verify::Signed => one_ma,
    };
    assert_eq!(
        verify_reply(pkt, req_auth, SECRET).is_ok(),
        first,
        "verify_reply on a signed reply, Message-Authenticators at {mas:?}"
    );
    for mode in MODES {
        assert_eq!(
            verify(mode, pkt, req_auth, SECRET).is_ok(),
            expect(mode),
            "{mode:?} on a signed reply, Message-Authenticators at {mas:?}"
        );
    }
    let parsed = parse_reply(pkt).expect("a signed reply parses");
    assert_eq!((parsed.code, parsed.identifier), (pkt[0], pkt[1]));
    assert_eq!(parsed.attributes.len(), attrs.len());

    for at in tamper_positions(pkt, &attrs) {
        let mut tampered = pkt.to_vec();
        tampered[at] ^= 0x40;
        for mode in [Verify::Strict, Verify::Lenient] {
            assert!(
                verify(mode, &tampered, req_auth, SECRET).is_err(),
                "{mode:?}: octet {at} of a signed reply changed, yet it verified"
            );
        }
        // Forging the Response Authenticator again only means something for an octet it
        // does not hold, of a reply whose Message-Authenticator should then refuse it.
        if !one_ma || (4..20).contains(&at) {
            continue;
        }
        seal_reply(&mut tampered, req_auth);
        // Where the change may remove the Message-Authenticator, `Lenient` may take the
        // reply as an unsigned one: only `Signed` and `Strict` must refuse it.
        let modes = if can_drop_ma(pkt, &attrs, at) {
            [Verify::Strict, Verify::Signed]
        } else {
            [Verify::Strict, Verify::Lenient]
        };
        for mode in modes {
            assert!(
                verify(mode, &tampered, req_auth, SECRET).is_err(),
                "{mode:?}: octet {at} of a signed reply changed and the Response \
                 Authenticator forged again, yet it verified"
            );
        }
    }
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
