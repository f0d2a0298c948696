//! Hostile datagrams from known and unknown sources; the server answers none and still serves.

use super::*;

/// Valid, signed Access-Requests to mutate: alice's password, a code with a State, and bob
/// with a Proxy-State, NAS-Identifier and Calling-Station-Id.
fn signed_requests() -> Vec<Vec<u8>> {
    vec![
        AccessRequestBuilder::new(1, "alice")
            .password(PW.as_bytes())
            .build(SECRET.as_bytes())
            .0,
        AccessRequestBuilder::new(2, "alice")
            .password(b"123456")
            .state(&[7; 32])
            .build(SECRET.as_bytes())
            .0,
        AccessRequestBuilder::new(3, "bob")
            .password(b"x")
            .proxy_state(b"ps")
            .attribute(32, b"nas")
            .attribute(31, b"203.0.113.9")
            .build(SECRET.as_bytes())
            .0,
    ]
}

/// Datagrams a hostile or broken network sends: noise, truncations, mutations of valid
/// requests, wrong secrets, bad attribute lengths. Anything that would still verify is left
/// out, so the server must answer none of them.
fn hostile_stream(n: usize, rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut templates = signed_requests();
    templates.push(status_server(4, SECRET.as_bytes()).0);
    let mut out = Vec::with_capacity(n);
    // Changed datagrams that verified anyway, by kind: none may, and a decoder that let
    // one through fails here instead of having it quietly left out of the stream (before,
    // up to 1 % were).
    let mut verified = [0usize; 6];
    while out.len() < n {
        let t = &templates[rng.gen_range(0..templates.len())];
        let kind = rng.gen_range(0..6);
        let d = match kind {
            0 => {
                let mut b = vec![0u8; rng.gen_range(0..600)];
                rng.fill_bytes(&mut b);
                b
            }
            1 => t[..rng.gen_range(0..t.len())].to_vec(),
            2 => {
                let mut b = t.clone();
                for _ in 0..rng.gen_range(1..6) {
                    let i = rng.gen_range(0..b.len());
                    b[i] = rng.gen();
                }
                b
            }
            3 => {
                AccessRequestBuilder::new(rng.gen(), "alice")
                    .password(PW.as_bytes())
                    .build(b"not-the-secret")
                    .0
            }
            4 => {
                let mut b = t.clone();
                let i = rng.gen_range(20..b.len());
                b[i] = [0u8, 1, 255][rng.gen_range(0..3)];
                b
            }
            _ => {
                AccessRequestBuilder::new(rng.gen(), "alice")
                    .password(PW.as_bytes())
                    .message_authenticator(false)
                    .build(SECRET.as_bytes())
                    .0
            }
        };
        // A mutation that wrote back the octets it replaced is the template itself, which
        // verifies: left out. Anything else must not verify: Message-Authenticator covers
        // every octet up to Length, and the templates have nothing after it.
        if d == *t {
            continue;
        }
        if decode_request(&d, SECRET.as_bytes(), true).is_err() {
            out.push(d);
        } else {
            verified[kind] += 1;
        }
    }
    assert_eq!(
        verified, [0; 6],
        "changed datagrams that verified, by kind (3: another secret, 5: no \
         Message-Authenticator)"
    );
    out
}

#[test]
fn hostile_datagrams_get_no_answer_and_logins_still_work() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW), LdapUser::new("bob", "bob-pw")]);
    let mut srv = Server::start(&Options::new(&slapd.url));
    let seed = srv.enroll("alice", &[]);
    let known = socket_from("127.0.0.1", srv.addr, 50);
    // 127.0.0.9 is in no [[client]] entry: even valid, signed requests from it are dropped.
    let unknown = socket_from("127.0.0.9", srv.addr, 50);
    let mut rng = StdRng::seed_from_u64(0xbad_d06);
    let stream = hostile_stream(20_000, &mut rng);
    let started = Instant::now();
    let mut sent = 0;
    for (i, d) in stream.iter().enumerate() {
        let s = if i % 4 == 0 { &unknown } else { &known };
        sent += usize::from(s.send(d).is_ok());
        if i % 500 == 0 {
            // Valid from the unknown source.
            let (v, _) = AccessRequestBuilder::new(9, "alice")
                .password(PW.as_bytes())
                .build(SECRET.as_bytes());
            sent += usize::from(unknown.send(&v).is_ok());
        }
        if i % 100 == 0 {
            // Paced, so the server reads them rather than the kernel dropping them.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Noise datagrams over RADIUS's 4096 octets.
    for size in [4097, 9000, 65_000] {
        let mut noise = vec![0u8; size];
        rng.fill_bytes(&mut noise);
        sent += usize::from(known.send(&noise).is_ok());
    }
    let mut buf = [0u8; 4096];
    let mut answered = 0;
    let drain_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < drain_until {
        for s in [&known, &unknown] {
            if s.recv(&mut buf).is_ok() {
                answered += 1;
            }
        }
    }
    assert_eq!(answered, 0, "replies to datagrams that failed verification");
    eprintln!(
        "sent {} hostile datagrams in {:?}",
        stream.len(),
        started.elapsed()
    );

    // Copies of an answered request with its header (identifier, authenticator) kept and
    // its body changed: the duplicate cache holds the answer under the header, and none of
    // them may be given it. The request itself, sent again, is (the entry was there).
    let (asked, auth) = AccessRequestBuilder::new(200, "bob")
        .password(b"wrong")
        .build(SECRET.as_bytes());
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    sock.send(&asked).unwrap();
    let n = sock.recv(&mut buf).expect("an answer to bob");
    let first = buf[..n].to_vec();
    assert_eq!(verify_reply(&first, &auth, SECRET.as_bytes()), Ok(()));
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut copies_answered = 0;
    for _ in 0..50 {
        let mut copy = asked.clone();
        while copy == asked {
            let i = rng.gen_range(20..copy.len());
            copy[i] = rng.gen();
        }
        sock.send(&copy).unwrap();
        copies_answered += usize::from(sock.recv(&mut buf).is_ok());
    }
    // A late answer to the last copies is caught here, not taken below for the
    // retransmit's (whose bytes it would share).
    let late_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < late_until {
        copies_answered += usize::from(sock.recv(&mut buf).is_ok());
    }
    assert_eq!(
        copies_answered, 0,
        "the cached reply went to changed copies"
    );
    sock.set_read_timeout(Some(Duration::from_millis(3000)))
        .unwrap();
    sock.send(&asked).unwrap();
    let n = sock.recv(&mut buf).expect("the retransmit answered");
    assert_eq!(buf[..n], first[..], "the retransmit gets the cached reply");

    assert!(
        full_login(&sock, "alice", PW, &seed, 0),
        "valid login after the storm"
    );
    // A valid request in a datagram padded past 4096 octets is still a valid request:
    // octets beyond its Length field are padding, ignored (RFC 2865 §3).
    for (id, size) in [(20u8, 4097usize), (21, 65_000)] {
        let (mut raw, auth) = AccessRequestBuilder::new(id, "alice")
            .password(PW.as_bytes())
            .build(SECRET.as_bytes());
        raw.resize(size, 0x41);
        sock.send(&raw).unwrap();
        let n = sock
            .recv(&mut buf)
            .expect("an answer to the padded request");
        assert_eq!(verify_reply(&buf[..n], &auth, SECRET.as_bytes()), Ok(()));
        assert_eq!(buf[1], id);
    }
    let (raw, auth) = status_server(77, SECRET.as_bytes());
    sock.send(&raw).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(verify_reply(&buf[..n], &auth, SECRET.as_bytes()), Ok(()));
    // "No reply" means something only if the server read them: its own count of datagrams
    // received, from its shutdown line.
    let counters = shutdown_counters(&mut srv);
    let received = counter(&counters, "received");
    eprintln!("{sent} sent, {received} received by the server: {counters:?}");
    // Every datagram read was looked at: none shed unverified for want of a request slot
    // (then "answered nothing" would hold whether it was checked or not), and each one
    // read is counted once, as answered (accepts, rejects, challenges, Status-Server, a
    // duplicate given its cached reply) or as dropped for a reason.
    assert_eq!(counter(&counters, "overloaded"), 0, "{counters:?}");
    let classified: usize = counters
        .iter()
        .filter(|(k, _)| k.as_str() != "received")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        classified, received,
        "datagrams read but not counted as answered or dropped: {counters:?}"
    );
    // The server has stopped: anything it ever sent the hostile sockets, however late, is
    // in their buffers now.
    for s in [&known, &unknown] {
        s.set_nonblocking(true).unwrap();
        let mut late = 0;
        while s.recv(&mut buf).is_ok() {
            late += 1;
        }
        assert_eq!(
            late, 0,
            "late replies to datagrams that failed verification"
        );
    }
    // All of them on an idle machine; under a parallel test run the kernel may drop some.
    assert!(received * 2 >= sent, "{sent} sent, {received} received");
}

/// Requests that verify but carry odd content: templates with a few value octets changed
/// past the header (User-Name bytes, NULs, control characters, a State or Proxy-State
/// changed; a change that breaks an attribute's length leaves the packet unsigned, and it
/// is not sent), each with a fresh Identifier and Request Authenticator (not duplicates of
/// one another) and signed again for the server's secret. The server answers them with
/// Access-Reject or -Challenge, does not panic (the harness checks its log when it is
/// dropped), and serves a login afterwards.
#[test]
fn signed_malformed_requests_do_not_break_the_server() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW), LdapUser::new("bob", "bob-pw")]);
    let mut srv = Server::start(&Options::new(&slapd.url));
    let seed = srv.enroll("alice", &[]);
    let sock = socket_from("127.0.0.1", srv.addr, 1);
    let templates = signed_requests();
    let mut rng = StdRng::seed_from_u64(0x5eed_5167);
    let (mut sent, mut verified, mut answered) = (0, 0, 0);
    let mut buf = [0u8; 4096];
    let mut read_replies = |answered: &mut usize| {
        while let Ok(n) = sock.recv(&mut buf) {
            // None of them can be let in (alice's right password gets a prompt, the State
            // is unknown, bob's password is wrong): a Reject or a Challenge. Replies are
            // not matched to their requests here, so only the code is checked.
            assert!(n >= 20 && [3u8, 11].contains(&buf[0]), "{:?}", &buf[..n]);
            *answered += 1;
        }
    };
    while sent < 3000 {
        let mut d = templates[rng.gen_range(0..templates.len())].clone();
        d[1] = rng.gen();
        rng.fill_bytes(&mut d[4..20]);
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(20..d.len());
            d[i] = rng.gen();
        }
        let Some(signed) = bodies::resign_with(&d, SECRET.as_bytes()) else {
            continue;
        };
        verified += usize::from(decode_request(&signed, SECRET.as_bytes(), true).is_ok());
        sock.send(&signed).unwrap();
        sent += 1;
        if sent % 50 == 0 {
            // Paced, so that they are worked out rather than dropped as overload, and by
            // the replies: on a loaded machine the server falls behind, and what it has
            // not read yet waits in its socket's buffer, which the kernel lets overflow.
            std::thread::sleep(Duration::from_millis(20));
            read_replies(&mut answered);
            let waited = Instant::now();
            while verified > answered + 200 && waited.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(5));
                read_replies(&mut answered);
            }
        }
    }
    // The last replies, however long a loaded machine takes: read until none has come
    // for 1.5 s.
    let (mut quiet, until) = (Instant::now(), Instant::now() + Duration::from_secs(30));
    while quiet.elapsed() < Duration::from_millis(1500) && Instant::now() < until {
        let before = answered;
        std::thread::sleep(Duration::from_millis(100));
        read_replies(&mut answered);
        if answered != before {
            quiet = Instant::now();
        }
    }
    eprintln!("{sent} signed mutations sent, {verified} decode, {answered} answered");
    assert!(verified > sent / 4, "too few got past decoding: {verified}");
    // Answered, not dropped (a few may be lost on a loaded machine's loopback).
    assert!(
        answered * 10 >= verified * 9,
        "{verified} verified, only {answered} answered"
    );
    let login = socket_from("127.0.0.1", srv.addr, 3000);
    assert!(
        full_login(&login, "alice", PW, &seed, 0),
        "valid login after the signed storm"
    );
    let received = counter(&shutdown_counters(&mut srv), "received");
    assert!(received * 2 >= sent, "{sent} sent, {received} received");
}

/// RFC 2865 §3: octets past the Length field are padding, ignored on reception. A request
/// padded one way and its retransmit padded another are one request: the retransmit gets
/// the same reply from the duplicate cache (before, it counted as a different packet under
/// the same key and got nothing).
#[test]
fn padding_past_the_length_field_is_ignored() {
    let slapd = Slapd::start(&[LdapUser::new("alice", PW)]);
    let srv = Server::start(&Options::new(&slapd.url));
    let sock = socket_from("127.0.0.1", srv.addr, 3000);
    let (raw, auth) = AccessRequestBuilder::new(5, "alice")
        .password(b"not-her-password")
        .build(SECRET.as_bytes());
    let mut buf = [0u8; 4096];
    let mut replies = Vec::new();
    for padding in [&[0u8, 0, 0][..], &[1, 2, 3, 4, 5]] {
        sock.send(&[&raw[..], padding].concat()).unwrap();
        let n = sock.recv(&mut buf).expect("an answer");
        verify_reply(&buf[..n], &auth, SECRET.as_bytes()).expect("reply verifies");
        replies.push(buf[..n].to_vec());
    }
    assert_eq!(parse_reply(&replies[0]).unwrap().code, 3, "Access-Reject");
    assert_eq!(
        replies[0], replies[1],
        "the retransmit's answer is the cached one"
    );
    let audit = srv.audit_json("alice");
    assert_eq!(audit.len(), 1, "one login, not two: {audit:#?}");
}
