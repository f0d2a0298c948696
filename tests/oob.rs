//! SMS codes, method choice and app passwords, end to end: the real radmfa binary, a real
//! slapd, real RADIUS clients (pyrad with enforce_ma, raw UDP for retransmits), and the
//! provider stand-in speaking Twilio's API to radmfa's production HTTP client.

mod common;

use std::time::Duration;

use common::http_proxy::Tinyproxy;
use common::oob_env::{
    cli_ok, client, delivery, directory, directory_with_two_named_entry, start, start_logged,
    ALICE_PW, BOB_PW, DIRECTORY_MOBILE,
};
use common::peers::{now, pyrad, reveals, totp};
use common::provider_standin::{Standin, SMS_FROM};
use common::radmfa::{bin, write_config, Options, Server, SECRET};
use radmfa::radius::client::{parse_reply, AccessRequestBuilder};

/// No test here expects silence, so a "timeout" fails at once with the server's log, which
/// says where the request spent its time.
fn py(srv: &Server, args: &[&str]) -> serde_json::Value {
    let r = pyrad(srv.port(), SECRET, args);
    assert_ne!(r["code"], "timeout", "no reply to {args:?}\n{}", srv.log());
    r
}

fn login(srv: &Server, user: &str, pw: &str) -> serde_json::Value {
    py(srv, &["--user", user, "--password", pw])
}

fn answer(srv: &Server, user: &str, text: &str, state: &serde_json::Value) -> serde_json::Value {
    py(
        srv,
        &[
            "--user",
            user,
            "--password",
            text,
            "--state",
            state.as_str().unwrap(),
        ],
    )
}

/// `radmfa user show USER --json`.
fn user_show(srv: &Server, user: &str) -> serde_json::Value {
    serde_json::from_str(&cli_ok(srv, &["user", "show", user, "--json"])).unwrap()
}

fn code_of(v: &serde_json::Value) -> &str {
    v["code"].as_str().unwrap()
}

fn message(v: &serde_json::Value) -> String {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

fn sms_client(keys: &str) -> Vec<String> {
    vec![client(
        "vpn",
        "127.0.0.1",
        &format!("methods = [\"sms\"]\n{keys}"),
    )]
}

/// One client, "vpn" on 127.0.0.1, offering `methods` (TOML items: `"sms", "voice"`) with
/// calls at a prompt (`voice_mode = "challenge"`).
fn call_prompt_client(methods: &str) -> Vec<String> {
    vec![client(
        "vpn",
        "127.0.0.1",
        &format!("methods = [{methods}]\nvoice_mode = \"challenge\""),
    )]
}

/// A code that is not the one in the `n`th SMS the stand-in received.
fn wrong_code(standin: &Standin, n: usize) -> &'static str {
    if standin.sms()[n].code() == "000000" {
        "111111"
    } else {
        "000000"
    }
}

#[test]
fn sms_code_flow_accepts_the_sent_code_and_rejects_a_wrong_one() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &sms_client(""));

    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    assert!(
        message(&r1).starts_with("Enter the code sent to ****0100"),
        "{r1}"
    );
    let sent = standin.sms();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, DIRECTORY_MOBILE);
    assert_eq!(sent[0].from, SMS_FROM);
    let code = sent[0].code();
    assert_eq!(code.len(), 6, "default code length: {:?}", sent[0]);
    let r2 = answer(&srv, "alice", &code, &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    // Used once: the same State and code again is refused.
    assert_eq!(
        code_of(&answer(&srv, "alice", &code, &r1["state"])),
        "Access-Reject"
    );

    // A wrong code is refused.
    let r3 = login(&srv, "alice", ALICE_PW);
    let good = standin.wait_sms(2, Duration::from_secs(2))[1].code();
    let wrong = if good == "000000" { "111111" } else { "000000" };
    assert_eq!(
        code_of(&answer(&srv, "alice", wrong, &r3["state"])),
        "Access-Reject"
    );
    // ...and the right code is no good after the prompt was closed by the wrong one.
    assert_eq!(
        code_of(&answer(&srv, "alice", &good, &r3["state"])),
        "Access-Reject"
    );

    // A wrong password sends nothing.
    assert_eq!(code_of(&login(&srv, "alice", "wrong")), "Access-Reject");
    assert_eq!(standin.sms().len(), 2);

    let audit = srv.audit_json("alice");
    let accept = audit.iter().find(|r| r["result"] == "accept").unwrap();
    assert_eq!(accept["mode"], "sms");
    assert_eq!(accept["phone"], DIRECTORY_MOBILE);
    assert!(audit
        .iter()
        .any(|r| r["mode"] == "sms" && r["reason"] == "wrong SMS code"));
    // The table says which number, masked as the prompt masks it.
    let out = srv.cli(&["audit", "--user", "alice", "--result", "accept"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table.lines().nth(1).unwrap_or_default();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns.get(3..5), Some(&["sms", "****0100"][..]), "{table}");
    assert!(!table.contains(DIRECTORY_MOBILE), "{table}");
}

/// `user set-method sms` for a user no text could reach (no number stored, none in the
/// directory's listed attributes) is stored but said: a bulk script from an old system's
/// export left such users behind silently. A number from the directory counts.
#[test]
fn set_method_sms_says_when_the_user_has_no_number() {
    let mut slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    let set = |user: &str| {
        let out = srv.cli(&["user", "set-method", user, "sms"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    // alice's number is the directory's mobile.
    let err = set("alice");
    assert!(!err.contains("note:"), "{err}");
    // The check of her account says which method her logins start with.
    let out = srv.cli(&["config", "check", "--connect", "--user", "alice"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok   user alice: default method sms"),
        "{text}"
    );
    // Texts go to stored numbers only now (the commands read the file): bob has none.
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let listed = "sources = [\"store\", \"mobile\", \"telephone\"]";
    assert!(text.contains(listed), "{text}");
    std::fs::write(&srv.config, text.replace(listed, "sources = [\"store\"]")).unwrap();
    let err = set("bob");
    assert!(
        err.contains("note: bob has no number texts or calls could use"),
        "{err}"
    );
    cli_ok(&srv, &["user", "set-phone", "bob", "+15550100777"]);
    let err = set("bob");
    assert!(!err.contains("note:"), "{err}");
    // The directory's numbers listed again, and the directory gone: alice's number is
    // unknown, not missing, and said so.
    std::fs::write(&srv.config, text).unwrap();
    slapd.stop();
    let err = set("alice");
    assert!(
        err.contains("alice's number was not checked: the directory did not answer"),
        "{err}"
    );
}

/// Wrong SMS codes count toward the lockout as wrong OATH codes do: at the threshold the
/// second factor locks (audited with why), and a locked user gets no more SMS.
#[test]
fn wrong_sms_codes_lock_the_second_factor() {
    let slapd = directory();
    let standin = Standin::start();
    let lockout = "[lockout]\nthreshold = 2\nduration_secs = 600\n\
                   \n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let srv = start(&slapd, &standin, "", lockout, &sms_client(""));
    for n in 1..=2 {
        let r = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Challenge", "{r}");
        let good = standin.wait_sms(n, Duration::from_secs(2))[n - 1].code();
        let wrong = if good == "000000" { "111111" } else { "000000" };
        let r = answer(&srv, "alice", wrong, &r["state"]);
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(message(&r).contains("Too many"), "{r}");
    assert_eq!(standin.sms().len(), 2, "a locked user gets no SMS");
    let audit = srv.audit_json("alice");
    let lock = audit
        .iter()
        .find(|r| r["result"] == "lock")
        .expect("lock row");
    assert_eq!(
        lock["reason"].as_str().unwrap().split(';').next().unwrap(),
        "2 consecutive wrong answers",
        "{lock}"
    );
    assert_eq!(lock["nas_ip"], "127.0.0.1", "{lock}");
    // Counted once, for the alert on guessing.
    let body = common::radmfa::http_get(srv.metrics_addr(), "/metrics").2;
    let m = common::peers::prometheus_parse(&body);
    assert_eq!(m["radmfa_lockouts_total{}"], 1.0, "{body}");
}

/// After a wrong SMS code at a prompt that allows more attempts, the prompt is asked again
/// as it was first asked, with the words it offers: ", or type resend or call" was left
/// out, though both still worked there. The resend it names still works.
#[test]
fn a_wrong_sms_code_asks_again_offering_resend_and_call() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "",
        "[challenge]\nmax_attempts = 3\n",
        &call_prompt_client(r#""sms", "voice""#),
    );
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    assert_eq!(
        message(&r1),
        "Enter the code sent to ****0100, or type resend or call: "
    );
    standin.wait_sms(1, Duration::from_secs(2));
    let r2 = answer(&srv, "alice", wrong_code(&standin, 0), &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}");
    assert_eq!(
        message(&r2),
        "Wrong code. 2 attempt(s) left. Enter the code sent to ****0100, or type resend or call: ",
    );
    let r3 = answer(&srv, "alice", "resend", &r2["state"]);
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}\n{}", srv.log());
    // Not the first prompt's words again, which read as if the resend did nothing.
    assert_eq!(
        message(&r3),
        "A new code was sent to ****0100. Enter the code, or type resend or call: "
    );
    let code = standin.wait_sms(2, Duration::from_secs(2))[1].code();
    assert_eq!(
        code_of(&answer(&srv, "alice", &code, &r3["state"])),
        "Access-Accept"
    );
}

/// A resend refused by the send limit: texts and calls share it, so the prompt offers no
/// call (it offered one, refused in turn, and then the text again: red team); the resend
/// still, as waiting may bring it back, but not past the day's cap; at every re-prompt of
/// that prompt. A call typed anyway is refused by the limit, not by the prompt.
#[test]
fn a_send_limit_refusal_offers_no_other_text_or_call() {
    let slapd = directory();
    let standin = Standin::start();
    for (limits, limited, still) in [
        (
            "max_per_user = 1\n",
            "Too many codes or calls were requested.",
            ", or type resend: ",
        ),
        (
            "max_per_user_per_day = 1\n",
            "Today's codes and calls are used up.",
            "****0100: ",
        ),
    ] {
        let srv = start(
            &slapd,
            &standin,
            limits,
            "",
            &call_prompt_client(r#""sms", "voice""#),
        );
        let r1 = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r1), "Access-Challenge", "{r1}\n{}", srv.log());
        let r2 = answer(&srv, "alice", "resend", &r1["state"]);
        assert_eq!(code_of(&r2), "Access-Challenge", "{r2}");
        let said = message(&r2);
        assert!(
            said.starts_with(limited) && said.ends_with(still) && !said.contains("call:"),
            "{limits}: {said}"
        );
        // Every later re-prompt of that prompt too (an empty answer's offered them all
        // again: review).
        let empty = answer(&srv, "alice", "", &r2["state"]);
        let said = message(&empty);
        assert!(
            said.starts_with("Nothing was typed.") && said.ends_with(still),
            "{limits}: {said}"
        );
        let r3 = answer(&srv, "alice", "call", &r2["state"]);
        assert!(message(&r3).starts_with(limited), "{limits}: {r3}");
        assert!(standin.calls().is_empty(), "a call was placed");
    }
}

/// After a send limit's refusal, the prompts that follow offer no text or call either:
/// the call's "not answered yet" re-prompt, and the app's prompt switched to (both still
/// offered them: review).
#[test]
fn the_prompts_after_a_send_limit_refusal_offer_no_text_or_call() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "max_per_user = 2\n",
        "",
        &call_prompt_client(r#""totp", "sms", "voice""#),
    );
    srv.enroll("alice", &[]);
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}\n{}", srv.log());
    let texted = answer(&srv, "alice", "sms", &r1["state"]);
    assert_eq!(code_of(&texted), "Access-Challenge", "{texted}");
    let called = answer(&srv, "alice", "call", &texted["state"]);
    assert_eq!(code_of(&called), "Access-Challenge", "{called}");
    let refused = answer(&srv, "alice", "sms", &called["state"]);
    assert!(
        message(&refused).starts_with("Too many codes or calls"),
        "{refused}"
    );
    let waiting = answer(&srv, "alice", "", &called["state"]);
    let said = message(&waiting);
    assert!(
        said.starts_with("The call is not answered yet.") && !said.contains("sms"),
        "{said}"
    );
    let app = answer(&srv, "alice", "app", &called["state"]);
    assert_eq!(code_of(&app), "Access-Challenge", "{app}");
    let said = message(&app);
    assert!(!said.contains("sms") && !said.contains("call"), "{said}");
}

/// The window's limit lapses with the window: a prompt that stopped offering texts after
/// "wait a few minutes, then try again" offers them again once they would go out, and one
/// does. It never did for the prompt's life, though typing them worked (review).
#[test]
fn a_window_limit_stops_hiding_texts_once_the_window_has_passed() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "max_per_user = 2\nwindow_secs = 10\n",
        "",
        &call_prompt_client(r#""sms", "voice""#),
    );
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}\n{}", srv.log());
    let called = answer(&srv, "alice", "call", &r1["state"]);
    assert_eq!(code_of(&called), "Access-Challenge", "{called}");
    let refused = answer(&srv, "alice", "sms", &called["state"]);
    assert!(
        message(&refused).starts_with("Too many codes or calls"),
        "{refused}"
    );
    let waiting = answer(&srv, "alice", "", &called["state"]);
    assert!(!message(&waiting).contains("sms"), "{waiting}");
    std::thread::sleep(Duration::from_secs(11));
    let waiting = answer(&srv, "alice", "", &called["state"]);
    let said = message(&waiting);
    assert!(
        said.starts_with("The call is not answered yet.") && said.ends_with("or type sms: "),
        "{said}"
    );
    let texted = answer(&srv, "alice", "sms", &called["state"]);
    assert!(
        message(&texted).starts_with("A new code was sent to"),
        "{texted}\n{}",
        srv.log()
    );
}

/// At the SMS prompt, an answer that is no code at all (the password typed again, a word)
/// takes one of the prompt's attempts but is not counted toward the lockout, as at a code
/// prompt: counted, a user confused at the prompt locked themselves out without trying a
/// single code, and the audit said "wrong SMS code". The text's code still works after.
#[test]
fn no_code_at_the_sms_prompt_is_not_counted_toward_the_lockout() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "",
        "[challenge]\nmax_attempts = 4\n",
        &[client("vpn", "127.0.0.1", "methods = [\"sms\"]")],
    );
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let code = standin.wait_sms(1, Duration::from_secs(2))[0].code();
    let r2 = answer(&srv, "alice", ALICE_PW, &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}");
    assert!(
        message(&r2).starts_with("Wrong code. 3 attempt(s) left."),
        "{r2}"
    );
    let r3 = answer(&srv, "alice", "abc", &r2["state"]);
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}");
    assert!(
        message(&r3).starts_with("Wrong code. 2 attempt(s) left."),
        "{r3}"
    );
    let failures = || {
        let out = srv.cli(&["user", "show", "alice", "--json"]);
        // Nothing stored for her yet: nothing counted either.
        if String::from_utf8_lossy(&out.stderr).contains("no tokens and no second-factor state") {
            return 0;
        }
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["failures"].as_u64().unwrap()
    };
    assert_eq!(failures(), 0);
    let reasons: Vec<String> = srv
        .audit_json("alice")
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "not a code (4 to 10 digits)")
            .count(),
        2,
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r == "wrong SMS code"),
        "{reasons:?}"
    );
    // A wrong code of digits is still counted; the text's code then gets in.
    let r4 = answer(&srv, "alice", wrong_code(&standin, 0), &r3["state"]);
    assert_eq!(code_of(&r4), "Access-Challenge", "{r4}");
    assert_eq!(failures(), 1);
    let ok = answer(&srv, "alice", &code, &r4["state"]);
    assert_eq!(code_of(&ok), "Access-Accept", "{ok}\n{}", srv.log());
}

/// sms, then "call", then "sms" again: the first text's code, slow to come, still finishes
/// the login at the last prompt, as after a plain resend (the call's prompt lost it).
#[test]
fn the_first_texts_code_survives_a_switch_to_a_call_and_back() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &call_prompt_client(r#""sms", "voice""#),
    );
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let first = standin.wait_sms(1, Duration::from_secs(2))[0].code();
    let r2 = answer(&srv, "alice", "call", &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}\n{}", srv.log());
    let r3 = answer(&srv, "alice", "sms", &r2["state"]);
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}\n{}", srv.log());
    standin.wait_sms(2, Duration::from_secs(2));
    let ok = answer(&srv, "alice", &first, &r3["state"]);
    assert_eq!(code_of(&ok), "Access-Accept", "{ok}\n{}", srv.log());
}

/// Wrong SMS answers sent all at once to one prompt (the NAS's State is all it takes) are
/// checked one at a time against the lockout: with more attempts allowed at the prompt
/// than the lockout's threshold, `threshold` of them are checked, the rest find the second
/// factor locked, the prompt closed or its attempts taken. Checked unserialised, all forty
/// would be compared with the code, and one right guess among them would get in.
#[test]
fn sms_answers_sent_at_once_are_stopped_by_the_lockout() {
    let slapd = directory();
    let standin = Standin::start();
    let lockout = "[lockout]\nthreshold = 3\nduration_secs = 600\n[challenge]\nmax_attempts = 10\n";
    let srv = start(&slapd, &standin, "", lockout, &sms_client(""));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let state = data_encoding::HEXLOWER
        .decode(r["state"].as_str().unwrap().as_bytes())
        .unwrap();
    let good = standin.wait_sms(1, Duration::from_secs(2))[0].code();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(srv.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    const GUESSES: u8 = 40;
    let mut sent = 0;
    for n in 0..u32::from(GUESSES) + 1 {
        let guess = format!("{:06}", 100_000 + n * 7_919);
        if guess == good || sent == GUESSES {
            continue;
        }
        let (raw, _) = AccessRequestBuilder::new(sent, "alice")
            .password(guess.as_bytes())
            .state(&state)
            .build(SECRET.as_bytes());
        sock.send(&raw).unwrap();
        sent += 1;
    }
    let mut buf = [0u8; 4096];
    for _ in 0..GUESSES {
        let n = sock.recv(&mut buf).expect("every answer is answered");
        assert_ne!(parse_reply(&buf[..n]).unwrap().code, 2, "no Access-Accept");
    }
    let audit = srv.audit_json("alice");
    let with = |reason: &str| audit.iter().filter(|r| r["reason"] == reason).count();
    assert_eq!(with("wrong SMS code"), 3, "answers checked: {audit:#?}");
    // The rest: refused in their turn, or (once the lock closed the prompt) for its State,
    // or unchecked once the prompt's attempts were all taken.
    assert_eq!(
        with("second factor locked")
            + with("unknown, used or expired State")
            + with("State already used, or its attempts all taken"),
        usize::from(GUESSES) - 3,
        "{audit:#?}"
    );
}

/// A code sent with the password (inline, or OpenVPN's static challenge) is an OATH code:
/// a client whose methods leave TOTP out refuses it, even from a user who has a token.
#[test]
fn a_code_with_the_password_is_refused_where_totp_is_not_allowed() {
    use data_encoding::BASE64;
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    let seed = srv.enroll("alice", &[]);
    let field = format!(
        "SCRV1:{}:{}",
        BASE64.encode(ALICE_PW.as_bytes()),
        BASE64.encode(totp(&seed, now(), &[]).as_bytes())
    );
    let r = login(&srv, "alice", &field);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(standin.sms().is_empty(), "an SMS was sent");
    let audit = srv.audit_json("alice");
    assert!(
        audit.iter().any(|r| r["result"] == "reject"
            && r["reason"]
                .as_str()
                .is_some_and(|s| s.contains("methods do not include totp"))),
        "{audit:#?}"
    );
    // The password alone still gets the client's method, the SMS.
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert_eq!(standin.wait_sms(1, Duration::from_secs(2)).len(), 1);
}

#[test]
fn provider_failure_rejects_with_a_clear_audit_reason() {
    let slapd = directory();
    let standin = Standin::start();
    standin.fail_sms(Some((429, 20429, "Too Many Requests")));
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    // A Reject: no prompt to choose another method at, so none is offered.
    assert_eq!(
        message(&r),
        "The code could not be sent. Try again later.",
        "{r}"
    );
    let rec = &srv.audit_json("alice")[0];
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains("SMS not sent") && reason.contains("HTTP 429") && reason.contains("20429"),
        "{reason}"
    );
    assert_eq!(rec["mode"], "sms");
    // The provider recovers: the next login gets its code.
    standin.fail_sms(None);
    assert_eq!(code_of(&login(&srv, "alice", ALICE_PW)), "Access-Challenge");
}

/// The provider failures are counted by kind: a rotated auth token (401 on every send)
/// does not look like numbers refused (400) or the provider's outage (503), and the kinds
/// add up to the total the shutdown line and earlier releases count.
#[test]
fn provider_failures_are_counted_by_kind() {
    let slapd = directory();
    let standin = Standin::start();
    let metrics = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let srv = start(
        &slapd,
        &standin,
        "max_per_user = 10\n",
        metrics,
        &sms_client(""),
    );
    for (status, code, text) in [
        (401, 20003, "Authenticate"),
        (401, 20003, "Authenticate"),
        (400, 21614, "To number: +15550100, is not a mobile number"),
        (503, 20503, "Service Unavailable"),
    ] {
        standin.fail_sms(Some((status, code, text)));
        let r = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }
    let body = common::radmfa::http_get(srv.metrics_addr(), "/metrics").2;
    let m = common::peers::prometheus_parse(&body);
    for (kind, n) in [
        ("auth", 2.0),
        ("refused", 1.0),
        ("server", 1.0),
        ("rate_limited", 0.0),
        ("timeout", 0.0),
    ] {
        assert_eq!(
            m.get(&format!("radmfa_provider_failures_total{{kind={kind}}}")),
            Some(&n),
            "{kind}: {body}"
        );
    }
    assert!(
        !m.contains_key("radmfa_provider_failures_total{}"),
        "{body}"
    );
}

/// Sends the provider refused (a 4xx: nothing went out, nothing was paid for) do not use up
/// the send limits: after a run of them — more than the user's and the NAS's allowance — the
/// provider is back and the user's next login gets its SMS. Without that, the user (and at
/// `max_per_nas`, everyone behind the NAS) was refused "Too many codes or calls" for the
/// window after the provider recovered. A failure that may have gone out (a 5xx) still
/// counts; each refused send keeps its audit reason; a retransmit of a refused request is
/// answered from the duplicate cache and sends nothing, even with the provider back.
#[test]
fn sends_the_provider_refused_do_not_use_up_the_send_limits() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "max_per_user = 2\nmax_per_nas = 2\n",
        "",
        &sms_client(""),
    );
    let refusals = [
        (400, 21211, "The 'To' number is not a valid phone number."),
        (401, 20003, "Authenticate"),
        (429, 20429, "Too Many Requests"),
        (400, 21211, "The 'To' number is not a valid phone number."),
    ];
    for (status, code, text) in refusals {
        standin.fail_sms(Some((status, code, text)));
        let r = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
        assert!(
            message(&r).contains("could not be sent"),
            "HTTP {status}: {r}"
        );
        // An invalid number is the number's fault: trying later would not help.
        assert_eq!(
            message(&r).contains("cannot take texts"),
            code == 21211,
            "HTTP {status}: {r}"
        );
        let reason = srv.audit_json("alice")[0]["reason"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            reason.contains("SMS not sent") && reason.contains(&format!("HTTP {status}")),
            "{reason}"
        );
    }
    // One more refused, sent as raw UDP so that its copy can be sent again below.
    let sock = srv.udp();
    let (pkt, _) = AccessRequestBuilder::new(91, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send(&pkt).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a reply");
    let refused = buf[..n].to_vec();
    assert_eq!(parse_reply(&refused).unwrap().code, 3, "Access-Reject");

    // The provider is back. The refused request's retransmit gets the same Reject, and no
    // SMS: its slot was given back, but its transaction (failed) stays, and the duplicate
    // cache answers first.
    standin.fail_sms(None);
    sock.send(&pkt).unwrap();
    let n = sock.recv(&mut buf).expect("the cached reply");
    assert_eq!(buf[..n], refused[..], "the same reply");
    // The user's next login gets its code.
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    assert_eq!(standin.wait_sms(1, Duration::from_secs(2)).len(), 1);
    // A 503 may come after the message went out: it counts, and with the SMS just sent the
    // allowance of two is used up.
    standin.fail_sms(Some((503, 20503, "Service Unavailable")));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    standin.fail_sms(None);
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(message(&r).contains("Too many codes"), "{r}");
    let reason = srv.audit_json("alice")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("rate limit"), "{reason}");
    assert_eq!(standin.sms().len(), 1, "one SMS in all");
}

/// A day's sends per user (all names of the entry) and per number are capped too: the
/// 5-minute window alone let one stolen password send about 1,440 texts a day. Here the
/// window would allow 5 at once; the day's cap of 2 stops the third, for the user and for
/// the number, says it lasts the day, and counts it in /metrics; `user unlock` lifts it.
#[test]
fn a_days_sends_are_capped_beside_the_window() {
    let slapd = directory();
    let standin = Standin::start();
    let metrics = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let srv = start(
        &slapd,
        &standin,
        "max_per_user_per_day = 2\n",
        metrics,
        &sms_client(""),
    );
    for _ in 0..2 {
        let r = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    }
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    // Not "wait a few minutes": it lasts the day.
    assert!(message(&r).contains("Try again tomorrow"), "{r}");
    let reason = srv.audit_json("alice")[0]["reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r == "sms daily limit: 2 a day reached for alice"),
        "{reason}"
    );
    // bob's number is alice's (the test directory gives everyone one): its day is used up
    // too, whoever's account asks.
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let reason = srv.audit_json("bob")[0]["reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r == "sms daily limit: 2 a day reached for the number it goes to"),
        "{reason}"
    );
    assert_eq!(standin.sms().len(), 2);
    // What an admin alerts on: the texts sent, and the sends the limits refused.
    let body = common::radmfa::http_get(srv.metrics_addr(), "/metrics").2;
    let m = common::peers::prometheus_parse(&body);
    assert_eq!(m["radmfa_oob_sent_total{kind=sms}"], 2.0, "{body}");
    assert_eq!(m["radmfa_oob_sent_total{kind=voice}"], 0.0, "{body}");
    assert_eq!(m["radmfa_send_limited_total{}"], 2.0, "{body}");
    // bob has nothing of his own stored, and is refused: the admin is told why, and by
    // whose sends ("no second-factor state" and "was not locked" sent the helpdesk away).
    let out = cli_ok(&srv, &["user", "show", "bob"]);
    assert!(
        out.contains("number:   +15550100: 2 of 2 a day")
            && out.contains("(by alice 2): texts and calls to it are refused"),
        "{out}"
    );
    assert!(!out.contains("sends:"), "bob sent nothing: {out}");
    let json = cli_ok(&srv, &["user", "show", "bob", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["sends"]["number"]["refused"], true, "{json}");
    assert_eq!(v["sends"]["number"]["by"][0]["user"], "alice", "{json}");
    assert_eq!(v["sends"]["own"]["day"], 0, "{json}");
    let out = cli_ok(&srv, &["user", "show", "alice"]);
    assert!(
        out.contains("sends:    2 of 2 a day") && out.contains("refused until"),
        "{out}"
    );
    // Unlocking bob forgets alice's sends in the number's limits only: bob gets his code,
    // and alice's own day is still used up.
    let out = cli_ok(&srv, &["user", "unlock", "bob"]);
    assert!(
        out.contains("2 send(s) of other names to its number no longer counted")
            && out.contains("by alice 2"),
        "{out}"
    );
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    assert_eq!(standin.sms().len(), 3);
    let r = login(&srv, "alice", ALICE_PW);
    assert!(message(&r).contains("Try again tomorrow"), "{r}");
    // An admin lifts it for alice (someone with her password may have used her day up):
    // her sends no longer count for her or the number's day (the NAS's cap still counts
    // them), and she gets her code.
    let out = cli_ok(&srv, &["user", "unlock", "alice"]);
    assert!(out.contains("2 send(s) no longer counted"), "{out}");
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    assert_eq!(standin.sms().len(), 4);
    // Out of range is refused by name.
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let bad = srv.config.with_file_name("bad.toml");
    std::fs::write(
        &bad,
        text.replace("max_per_user_per_day = 2", "max_per_user_per_day = 0"),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["--config", bad.to_str().unwrap(), "config", "check"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("sms.max_per_user_per_day"), "{said}");
}

/// `user unlock` says how many sends it took off the limits: those of the day, the ones that
/// counted. A send older than a day that housekeeping has not purged yet (it keeps them 25
/// hours) was counted in the number too, beside a "by" list that left it out ("2 send(s)
/// ... (by alice 1)").
#[test]
fn unlock_counts_only_the_sends_that_counted() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "max_per_user_per_day = 5\n",
        "",
        &sms_client(""),
    );
    for _ in 0..2 {
        let r = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    }
    // The first send, as if made 24.5 hours ago: every event of its slot.
    let db = rusqlite::Connection::open(srv.dir.path().join("radmfa.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let aged = db
        .execute(
            "UPDATE send_events SET at = at - 88200 \
             WHERE slot = (SELECT slot FROM send_events ORDER BY at, rowid LIMIT 1)",
            [],
        )
        .unwrap();
    assert!(aged >= 2, "{aged} events aged");
    drop(db);
    let out = cli_ok(&srv, &["user", "show", "alice"]);
    assert!(out.contains("sends:    1 of 5 a day"), "{out}");
    let out = cli_ok(&srv, &["user", "unlock", "bob"]);
    assert!(
        out.contains("1 send(s) of other names to its number no longer counted")
            && out.contains("(by alice 1;"),
        "{out}"
    );
    let out = cli_ok(&srv, &["user", "unlock", "alice"]);
    assert!(out.contains("; 1 send(s) no longer counted"), "{out}");
}

/// `provider_failure = "allow"`: the provider's outage lets a correct password in (fail
/// open), audited as such; a wrong password, the provider's rate limit (which a caller
/// can bring on, with a burst of logins), our credentials refused (a mistake of ours that
/// lasts until someone fixes it) and a send refused by radmfa's rate limit do not.
#[test]
fn provider_failure_allow_fails_open_for_outages_only() {
    let slapd = directory();
    let standin = Standin::start();
    standin.fail_sms(Some((429, 20429, "Too Many Requests")));
    let mut srv = start(
        &slapd,
        &standin,
        "max_per_user = 2\n",
        "",
        &sms_client("provider_failure = \"allow\""),
    );
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["mode"], "sms", "{rec}");
    assert!(
        rec["reason"].as_str().unwrap().contains("HTTP 429"),
        "{rec}"
    );
    // Twilio's "Authenticate" (a rotated or mistyped auth token): not an outage.
    standin.fail_sms(Some((401, 20003, "Authenticate")));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["mode"] == "sms" && rec["reason"].as_str().unwrap().contains("HTTP 401"),
        "{rec}"
    );
    standin.fail_sms(Some((503, 20503, "Service Unavailable")));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["mode"], "fail-open", "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 503") && reason.contains("provider_failure = allow"),
        "{reason}"
    );
    assert_eq!(
        code_of(&login(&srv, "alice", "wrong-password")),
        "Access-Reject",
        "the password is still checked"
    );
    // The provider is back: a code as usual, until the limit of two sends is used up — the
    // 503 counted (the SMS may have gone out), the refused 429 and 401 not. A limit is a
    // decision, not an outage: the next login is refused.
    standin.fail_sms(None);
    assert_eq!(code_of(&login(&srv, "alice", ALICE_PW)), "Access-Challenge");
    let third = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&third), "Access-Reject", "{third}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert_ne!(rec["mode"], "fail-open", "{rec}");
    assert!(
        rec["reason"].as_str().unwrap().contains("rate limit"),
        "{rec}"
    );
    // Counted for the metrics (and an alert): one outage, one login let through.
    srv.stop();
    let log = srv.log();
    let stopped = log.lines().find(|l| l.contains("stopped")).unwrap_or("");
    assert!(
        stopped.contains("provider_failures=3") && stopped.contains("fail_open=1"),
        "{log}"
    );
}

/// The SMS API down (503) and a client `vpn` with `provider_failure = "allow"` and `keys`.
fn sms_down_fail_open(keys: &str) -> (common::slapd::Slapd, Standin, Server) {
    let slapd = directory();
    let standin = Standin::start();
    standin.fail_sms(Some((503, 20503, "Service Unavailable")));
    let keys = format!("{keys}\nprovider_failure = \"allow\"");
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &[client("vpn", "127.0.0.1", &keys)],
    );
    (slapd, standin, srv)
}

/// Fail-open is for users whose only factor is the phone. One with a token gets a code
/// prompt; typing "sms" there while the provider is down must not turn the password alone
/// into an Accept.
#[test]
fn provider_failure_allow_does_not_fail_open_for_a_user_with_a_token() {
    let (_slapd, _standin, srv) = sms_down_fail_open("methods = [\"totp\", \"sms\"]");
    srv.enroll("alice", &[]);
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    // Nothing sent: the code prompt stays, saying so (the app's code still gets in).
    let r2 = answer(&srv, "alice", "sms", &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}\n{}", srv.log());
    assert_eq!(r2["state"], r1["state"]);
    assert!(message(&r2).contains("could not be sent"), "{r2}");
    // "sms", no longer offered there, is not taken either: it asked the provider again,
    // and counted another send (red team).
    let sends = srv.audit_json("alice").len();
    let r3 = answer(&srv, "alice", "sms", &r1["state"]);
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}");
    assert!(
        message(&r3).starts_with("\"sms\" is not available here."),
        "{r3}"
    );
    let audit = srv.audit_json("alice");
    assert!(
        audit.len() == sends + 1
            && audit[0]["reason"] == "a prompt word this prompt does not offer",
        "{audit:#?}"
    );
    let rec = &audit[1];
    assert_ne!(rec["mode"], "fail-open", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("the user has a token"),
        "{rec}"
    );
    // Bob, with no token, is the case fail-open is for.
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(srv.audit_json("bob")[0]["mode"], "fail-open");
}

/// Nor by switching away from a method that worked: bob (phone only) is being called, the
/// SMS API is down, and typing "sms" at the call's prompt must not let the password alone
/// in. It did: the failed send of the switch failed open.
#[test]
fn provider_failure_allow_does_not_fail_open_on_a_switch() {
    let (_slapd, standin, srv) =
        sms_down_fail_open("methods = [\"voice\", \"sms\"]\nvoice_mode = \"challenge\"");
    let r1 = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}\n{}", srv.log());
    assert_eq!(
        standin.calls().len(),
        1,
        "the first method, a call, went out"
    );
    let r2 = answer(&srv, "bob", "sms", &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}\n{}", srv.log());
    assert_eq!(r2["state"], r1["state"], "the call's prompt stays");
    assert!(message(&r2).contains("could not be sent"), "{r2}");
    let audit = srv.audit_json("bob");
    assert!(audit.iter().all(|r| r["mode"] != "fail-open"), "{audit:?}");
}

/// A refusal of the one message (Twilio's 400 for a number that cannot take an SMS) is not
/// an outage: `provider_failure = "allow"` does not let the password alone in. Otherwise a
/// caller with the password could pick the method that always fails for this user.
#[test]
fn provider_failure_allow_does_not_fail_open_for_a_refused_number() {
    let slapd = directory();
    let standin = Standin::start();
    standin.fail_sms(Some((
        400,
        21614,
        "'To' number is not a valid mobile number",
    )));
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &sms_client("provider_failure = \"allow\""),
    );
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let rec = &srv.audit_json("alice")[0];
    assert_ne!(rec["mode"], "fail-open", "{rec}");
    assert!(
        rec["reason"].as_str().unwrap().contains("HTTP 400"),
        "{rec}"
    );
}

/// A number the provider refuses for good (Twilio's 400 with 21614: a landline; 21610: the
/// user replied STOP) is not "try again later", which never works: the user is told the
/// number on record cannot take texts and to have the helpdesk check it, and the audit
/// reason says what the provider's code means. At a prompt (a switch from the call to
/// SMS), the prompt stays, saying the same.
#[test]
fn a_number_the_provider_refuses_is_not_try_again_later() {
    const CANNOT_TEXT: &str = "The code could not be sent: the phone number on record cannot \
         take texts. Ask the helpdesk to check it.";
    let slapd = directory();
    let standin = Standin::start();
    standin.fail_sms(Some((
        400,
        21614,
        "To number: +15550100, is not a mobile number",
    )));
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &[
            client("vpn", "127.0.0.1", "methods = [\"sms\"]"),
            client(
                "gw",
                "127.0.0.2",
                "methods = [\"voice\", \"sms\"]\nvoice_mode = \"challenge\"",
            ),
        ],
    );
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(message(&r), CANNOT_TEXT, "{r}");
    let reason = srv.audit_json("alice")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("HTTP 400")
            && reason.contains("21614")
            && reason.contains("not a mobile number (a landline"),
        "{reason}"
    );
    assert!(!reason.contains("+15550100"), "masked: {reason}");
    // Waited for: the warning may reach the log just after the reply.
    assert!(
        srv.log_shows("the provider refuses the number on record"),
        "{}",
        srv.log()
    );

    // The user replied STOP to an earlier text: at the call's prompt, "sms" keeps the prompt.
    standin.fail_sms(Some((
        400,
        21610,
        "Attempt to send to unsubscribed recipient",
    )));
    let gw = |args: &[&str]| {
        let mut all = vec!["--bind", "127.0.0.2"];
        all.extend_from_slice(args);
        py(&srv, &all)
    };
    let r1 = gw(&["--user", "bob", "--password", BOB_PW]);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}\n{}", srv.log());
    let state = r1["state"].as_str().unwrap();
    let r2 = gw(&["--user", "bob", "--password", "sms", "--state", state]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}\n{}", srv.log());
    assert_eq!(r2["state"], r1["state"], "the call's prompt stays");
    // Offering "sms" no more: it just failed.
    assert_eq!(
        message(&r2),
        format!("{CANNOT_TEXT} Answer the call, then press Enter: "),
        "{r2}"
    );
    let reason = srv.audit_json("bob")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("21610") && reason.contains("opted out"),
        "{reason}"
    );

    // Not every refusal is the number's: a 400 with another code is still "try again".
    standin.fail_sms(Some((400, 21602, "Message body is required.")));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(
        message(&r),
        "The code could not be sent. Try again later.",
        "{r}"
    );
}

/// On an inline client the field is split only for a user with a token: carol has none, and
/// her password holds the delimiter; it is her password, whole.
#[test]
fn an_inline_field_is_not_split_for_a_user_without_a_token() {
    let slapd = common::slapd::Slapd::start(&[common::slapd::LdapUser::new("carol", "pa,ss")]);
    let standin = Standin::start();
    let keys = "methods = [\"totp\"]\notp_mode = \"inline\"\nno_factor = \"allow\"";
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &[client("vpn", "127.0.0.1", keys)],
    );
    let r = login(&srv, "carol", "pa,ss");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(srv.audit_json("carol")[0]["mode"], "primary-only");
}

/// Without a `[phone] sources` line only numbers in radmfa's store count (directory ones
/// did, before). A user whose only number is the directory's would now have no second
/// factor: with `no_factor = "allow"` that must not become a login on the password alone.
#[test]
fn a_directory_number_left_out_of_the_sources_is_no_way_in_on_the_password() {
    let slapd = directory();
    let standin = Standin::start();
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    let phone = "[phone]\nsources = [\"store\", \"mobile\", \"telephone\"]\n";
    let sections = delivery(&standin, "");
    assert!(sections.contains(phone), "the harness's [phone] changed");
    o.extra = format!(
        "{}{}",
        sections.replace(phone, ""),
        sms_client("no_factor = \"allow\"").concat()
    );
    let srv = Server::start(&o);
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("[phone] sources leaves the directory out"),
        "{rec}"
    );
    assert!(standin.sms().is_empty());
    // A number stored in radmfa is used.
    cli_ok(&srv, &["user", "set-phone", "alice", "+15550123456"]);
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert_eq!(standin.sms().len(), 1);
}

/// Nor is a directory number in a listed source that cannot be dialled: written nationally
/// ("0171 1234567") with no `[phone] default_country_code`. It was skipped as if there were
/// none, and `no_factor = "allow"` let the user in on the password alone.
#[test]
fn an_undiallable_directory_number_is_no_way_in_on_the_password() {
    let slapd = common::slapd::Slapd::start_with(
        &[],
        common::slapd::SlapdOptions {
            extra_ldif: "dn: uid=erin,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                         uid: erin\ncn: Erin\nsn: Erin\nmobile: 0171 1234567\n\
                         userPassword: erin-pw\n\n\
                         dn: uid=finn,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                         uid: finn\ncn: Finn\nsn: Finn\nmobile: n/a\n\
                         userPassword: finn-pw\n\n"
                .into(),
            ..Default::default()
        },
    );
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &sms_client("no_factor = \"allow\""),
    );
    let r = login(&srv, "erin", "erin-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(message(&r).contains("cannot be used here"), "{r}");
    let rec = &srv.audit_json("erin")[0];
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains("phone number for this user cannot be used")
            && reason.contains("default_country_code"),
        "{rec}"
    );
    assert!(!reason.contains("1234567"), "the number is masked: {rec}");
    // Not a number at all: the advice is to correct it, not to set a country code.
    let r = login(&srv, "finn", "finn-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let rec = &srv.audit_json("finn")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("correct it in the directory"),
        "{rec}"
    );
    assert!(standin.sms().is_empty());
    // `config check --connect --user` says the same.
    let out = srv.cli(&["config", "check", "--connect", "--user", "erin"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cannot be dialled"), "{text}");
    // A number stored in radmfa is used.
    cli_ok(&srv, &["user", "set-phone", "erin", "+15550123456"]);
    let r = login(&srv, "erin", "erin-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert_eq!(standin.sms().len(), 1);
}

/// Texts and calls go only to the countries `[phone] allowed_country_codes` lists: a
/// satellite number a user wrote into their own entry is refused as one that cannot be
/// dialled (no SMS sent, and not let in on the password alone), and `user set-phone`
/// refuses such a number; one in a listed country is texted.
#[test]
fn numbers_outside_the_allowed_countries_get_no_sms() {
    let slapd = common::slapd::Slapd::start_with(
        &[],
        common::slapd::SlapdOptions {
            extra_ldif: "dn: uid=erin,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                         uid: erin\ncn: Erin\nsn: Erin\nmobile: +882 16 1234 5678\n\
                         userPassword: erin-pw\n\n\
                         dn: uid=frank,ou=people,dc=example,dc=org\n\
                         objectClass: inetOrgPerson\nuid: frank\ncn: Frank\nsn: Frank\n\
                         mobile: +1 555 010 0777\nuserPassword: frank-pw\n\n"
                .into(),
            ..Default::default()
        },
    );
    let standin = Standin::start();
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!(
        "{}{}",
        delivery(&standin, ""),
        sms_client("no_factor = \"allow\"").concat()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &o);
    let text = std::fs::read_to_string(&config).unwrap();
    let sources = "sources = [\"store\", \"mobile\", \"telephone\"]";
    assert!(text.contains(sources), "{text}");
    let allowed = format!("{sources}\nallowed_country_codes = [\"1\"]");
    std::fs::write(&config, text.replacen(sources, &allowed, 1)).unwrap();
    // The same store, as an earlier config without the list saw it.
    let open = config.with_file_name("open.toml");
    std::fs::write(&open, &text).unwrap();
    let srv = Server::start_with(dir, config);
    let r = login(&srv, "erin", "erin-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let reason = srv.audit_json("erin")[0]["reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.contains("allowed_country_codes does not list")),
        "{reason}"
    );
    assert!(standin.sms().is_empty());
    let out = srv.cli(&["user", "set-phone", "erin", "+882 16 1234 5678"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allowed_country_codes"),
        "{out:?}"
    );
    // The admin CLI under another config file.
    let under = |config: &std::path::Path, args: &[&str]| {
        std::process::Command::new(bin())
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .unwrap()
    };
    // A number stored before the list was set: refused at login, and the reason says why.
    let out = under(&open, &["user", "set-phone", "erin", "+44 7700 900123"]);
    assert!(out.status.success(), "{out:?}");
    let r = login(&srv, "erin", "erin-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let reason = srv.audit_json("erin")[0]["reason"].clone();
    assert!(
        reason.as_str().is_some_and(|r| r
            .starts_with("the user's stored phone number cannot be used")
            && r.contains("allowed_country_codes")
            && !r.contains("900123")),
        "{reason}"
    );
    assert!(standin.sms().is_empty());
    cli_ok(&srv, &["user", "set-phone", "erin", "+15550123456"]);
    let r = login(&srv, "erin", "erin-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert_eq!(standin.sms().len(), 1);
    // frank's own directory entry has a number in an allowed country, but an admin stored
    // one for him that is now outside the list: his login is refused, not texted at the
    // directory's number instead (users can often edit that one themselves).
    let out = under(&open, &["user", "set-phone", "frank", "+44 7700 900123"]);
    assert!(out.status.success(), "{out:?}");
    let r = login(&srv, "frank", "frank-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let reason = srv.audit_json("frank")[0]["reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|r| r.starts_with("the user's stored phone number cannot be used")),
        "{reason}"
    );
    assert_eq!(standin.sms().len(), 1, "no text to the directory's number");
    // And the admin's views say so.
    let out = srv.cli(&["user", "show", "frank"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cannot be dialled now") && text.contains("allowed_country_codes"),
        "{text}"
    );
    let out = srv.cli(&["config", "check", "--connect", "--user", "frank"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the stored number cannot be dialled")
            && text.contains("not used in its place")
            && !text.contains("0777"),
        "{text}"
    );
    // Where [phone] sources leaves the store out, a stored number (erin's is dialable) is
    // not blamed for being undialable.
    let no_store = open.with_file_name("no-store.toml");
    let open_text = std::fs::read_to_string(&open).unwrap();
    std::fs::write(
        &no_store,
        open_text.replacen(sources, "sources = [\"telephone\"]", 1),
    )
    .unwrap();
    let out = under(
        &no_store,
        &["config", "check", "--connect", "--user", "erin"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("user erin: no number") && !text.contains("cannot be dialled"),
        "{text}"
    );
}

/// `no_factor = "allow"` is for users with no second factor. One with a token on a client
/// whose methods leave OATH codes out is refused, not let in on the password alone; once
/// his token is gone, bob (whose directory phone this inline client cannot call) is.
#[test]
fn no_factor_allow_does_not_pass_a_user_whose_token_the_client_cannot_use() {
    let slapd = directory();
    let standin = Standin::start();
    let keys = "methods = [\"voice\"]\notp_mode = \"inline\"\nno_factor = \"allow\"";
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &[client("vpn", "127.0.0.1", keys)],
    );
    srv.enroll("bob", &[]);
    // (This client takes no codes, so nothing typed after the password is split off.)
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    // Inline: a wrong password's reply, no "cannot be used here" (`inline_reply`).
    assert!(r["messages"].as_array().is_none_or(|m| m.is_empty()), "{r}");
    let rec = &srv.audit_json("bob")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("tokens cannot be used"),
        "{rec}"
    );
    cli_ok(&srv, &["user", "reset", "bob"]);
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(srv.audit_json("bob")[0]["mode"], "primary-only");
}

/// Nor a user whose method an admin chose (`user set-method bob sms`, the number from the
/// directory) on a client whose methods leave it out: refused as a user with a disabled
/// token is, not let in on the password as one who never had a second factor; and
/// `config check --user` names that client. Without a chosen method, bob's directory
/// number alone does not count on a client that could not text or call it.
#[test]
fn no_factor_allow_does_not_pass_a_user_whose_chosen_method_the_client_cannot_use() {
    let slapd = directory();
    let standin = Standin::start();
    let keys = "methods = [\"totp\"]\nno_factor = \"allow\"";
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &[client("ssh", "127.0.0.1", keys)],
    );
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(srv.audit_json("bob")[0]["mode"], "primary-only");
    let check = |srv: &Server| {
        let out = srv.cli(&["config", "check", "--connect", "--user", "bob"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!check(&srv).contains("would be refused"), "{}", check(&srv));

    cli_ok(&srv, &["user", "set-method", "bob", "sms"]);
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(message(&r).contains("cannot be used here"), "{r}");
    let rec = &srv.audit_json("bob")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("chosen method sms (user set-method) cannot be used"),
        "{rec}"
    );
    assert!(
        standin.sms().is_empty(),
        "nothing sent on a totp-only client"
    );
    let text = check(&srv);
    assert!(
        text.contains("would be refused on client(s) \"ssh\": its chosen method sms"),
        "{text}"
    );
}

#[test]
fn sms_through_the_generic_http_provider() {
    let slapd = directory();
    let standin = Standin::start();
    standin.set_generic_reply(202, r#"{"state":"accepted"}"#, Duration::ZERO);
    let http = format!(
        "\n[http_sms]\nurl = \"{}/generic/send\"\nbody = '{{\"to\":\"{{phone}}\",\"text\":\"{{message}}\"}}'\n\
         encoding = \"json\"\nauth = \"bearer\"\ntoken = \"gw-token\"\n\
         success_body_contains = \"accepted\"\n",
        standin.url
    );
    let srv = start(
        &slapd,
        &standin,
        "provider = \"http\"\ncode_length = 8",
        &http,
        &sms_client(""),
    );
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let req = standin.generic_requests().pop().expect("gateway called");
    assert_eq!(req.headers["authorization"], "Bearer gw-token");
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["to"], DIRECTORY_MOBILE);
    let text = body["text"].as_str().unwrap();
    let code: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    assert_eq!(code.len(), 8, "code_length = 8: {text}");
    assert!(standin.sms().is_empty(), "Twilio not used");
    assert_eq!(
        code_of(&answer(&srv, "alice", &code, &r1["state"])),
        "Access-Accept"
    );
}

/// `config check --connect` reaches the SMS and call providers without sending anything:
/// Twilio's account is read with the configured credentials (a trial account is warned of,
/// a suspended one fails the check), the generic gateway's server answers an OPTIONS at its
/// root. Before, neither was contacted, and a wrong token or URL showed only at the first
/// login that needed a text.
#[test]
fn config_check_connect_reaches_the_providers_without_sending() {
    let slapd = directory();
    let standin = Standin::start();
    let http = format!(
        "\n[http_sms]\nurl = \"{}/generic/send?key=gw-key-in-url\"\nbody = \"to={{phone}}&text={{message}}\"\n",
        standin.url
    );
    let srv = start(
        &slapd,
        &standin,
        "provider = \"http\"",
        &http,
        &sms_client(""),
    );
    let check = || {
        let out = srv.cli(&["config", "check", "--connect"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), text)
    };
    let (ok, text) = check();
    assert!(ok, "{text}");
    assert!(
        text.contains("ok   twilio: account AC")
            && text.contains("accepted the auth token (active, Full account; nothing sent)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ok   http sms: reached {} (HTTP 404 to an OPTIONS request; nothing sent)",
            standin.url
        )),
        "{text}"
    );
    assert!(!text.contains("gw-key-in-url"), "{text}");
    assert!(!text.contains("WARN twilio"), "{text}");
    standin.set_account("active", "Trial");
    let (ok, text) = check();
    assert!(ok, "{text}");
    assert!(
        text.contains("WARN twilio: a trial account texts and calls only the numbers verified"),
        "{text}"
    );
    standin.set_account("suspended", "Full");
    let (ok, text) = check();
    assert!(!ok, "a suspended account passed: {text}");
    assert!(
        text.contains("FAIL twilio: account AC")
            && text.contains("is suspended: it sends no texts"),
        "{text}"
    );
    // What a proxy (or load balancer) answers with the gateway down behind it, and a proxy
    // refusing radmfa: not "reached" (review: both were "ok").
    standin.set_account("active", "Full");
    standin.set_other_status(502);
    let (ok, text) = check();
    assert!(!ok, "a 502 passed: {text}");
    assert!(
        text.contains("FAIL http sms: HTTP 502 to an OPTIONS request at")
            && text.contains("could not reach the gateway"),
        "{text}"
    );
    standin.set_other_status(407);
    let (ok, text) = check();
    assert!(!ok, "a 407 passed: {text}");
    assert!(
        text.contains("FAIL http sms: the egress proxy refused radmfa (HTTP 407"),
        "{text}"
    );
    // A 403 is a gateway's own answer at its root, often; from an allowlisting proxy (it
    // says so: Squid's X-Squid-Error) it is a refusal (review: "reached").
    standin.set_other_status(403);
    let (ok, text) = check();
    assert!(ok && text.contains("ok   http sms: reached"), "{text}");
    standin.set_other_header("X-Squid-Error", "ERR_ACCESS_DENIED 0");
    let (ok, text) = check();
    assert!(!ok, "a proxy's 403 passed: {text}");
    assert!(
        text.contains("FAIL http sms: a proxy answered HTTP 403 (ERR_ACCESS_DENIED 0)"),
        "{text}"
    );
    // RFC 9209's Proxy-Status: a proxy's own error (error=, nothing received) fails; one
    // passing on the gateway's answer (received-status) is the gateway reached (review: a
    // CDN's header failed a working setup).
    standin.set_other_header("Proxy-Status", "ExampleCDN; error=destination_unavailable");
    let (ok, text) = check();
    assert!(
        !ok && text.contains("FAIL http sms: a proxy answered HTTP 403"),
        "{text}"
    );
    standin.set_other_status(405);
    standin.set_other_header("Proxy-Status", "ExampleCDN; received-status=405");
    let (ok, text) = check();
    assert!(ok && text.contains("ok   http sms: reached"), "{text}");
    // Several members: the last one, nearest radmfa, answered (review: "reached").
    standin.set_other_header(
        "Proxy-Status",
        "shield; received-status=200, edge; error=http_request_denied",
    );
    let (ok, text) = check();
    assert!(
        !ok && text.contains("FAIL http sms: a proxy answered HTTP 405"),
        "{text}"
    );
    assert!(standin.sms().is_empty() && standin.calls().is_empty());
    assert!(standin.generic_requests().is_empty());
    assert!(standin
        .other_requests()
        .iter()
        .all(|(method, path, credentials)| method == "OPTIONS" && path == "/" && !credentials));
}

/// An SMS gateway whose certificate a private CA signed (an on-premises gateway, a
/// TLS-inspecting egress proxy): trusted once its CA is in the system's store
/// (`SSL_CERT_FILE` here, update-ca-certificates on a host), beside the built-in roots.
/// Before, only the built-in roots counted: "invalid peer certificate: UnknownIssuer",
/// whatever the system trusted.
#[test]
fn an_sms_gateway_under_a_private_ca_is_trusted_from_the_system_store() {
    use std::io::BufRead;
    let slapd = directory();
    let standin = Standin::start();
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki::Pki::make(dir.path(), "gateway");
    let hits = dir.path().join("hits");
    // A gateway of a few lines: HTTPS with the private CA's certificate for 127.0.0.1.
    let script = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        open(sys.argv[3], "a").write(self.path + "\n")
        self.send_response(202); self.send_header("Content-Length", "6"); self.end_headers()
        self.wfile.write(b"queued")
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
    let mut gateway = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&pki.server_cert)
        .arg(&pki.server_key)
        .arg(&hits)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufReader::new(gateway.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let http = format!(
        "\n[http_sms]\nurl = \"https://127.0.0.1:{}/send\"\nbody = 'to={{phone}}&text={{message}}'\n",
        port.trim()
    );
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!(
        "{}{http}{}",
        common::oob_env::delivery(&standin, "provider = \"http\""),
        sms_client("").concat()
    );
    let cfg_dir = tempfile::tempdir().unwrap();
    let config = write_config(cfg_dir.path(), &o);
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env("SSL_CERT_FILE", &pki.ca)
        .env_remove("SSL_CERT_DIR");
    let srv = Server::spawn(cfg_dir, config, cmd);
    let r = login(&srv, "alice", ALICE_PW);
    let sent = std::fs::read_to_string(&hits).unwrap_or_default();
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    assert_eq!(sent, "/send\n", "the gateway's requests");
}

#[test]
fn sms_code_after_its_lifetime_is_rejected() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "code_ttl_secs = 2", "", &sms_client(""));
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge");
    let code = standin.sms()[0].code();
    std::thread::sleep(Duration::from_millis(3100));
    let r2 = answer(&srv, "alice", &code, &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Reject", "{r2}");
    assert!(message(&r2).contains("expired"), "{r2}");
    let audit = srv.audit_json("alice");
    assert!(
        audit[0]["reason"]
            .as_str()
            .unwrap()
            .contains("SMS code expired"),
        "{:#?}",
        audit[0]
    );
}

/// A resend opens a new prompt, but not for ever: five challenge timeouts after the password
/// check (here 5 x 2 s) the user must log in again. And a new number set by an admin closes
/// the prompts opened before, so none of them resends a code to the old one.
#[test]
fn resends_end_with_the_prompt_chain_and_a_new_number_closes_open_prompts() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "",
        "\n[challenge]\ntimeout_secs = 2\n",
        &sms_client(""),
    );
    let first = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    let resent = answer(&srv, "alice", "resend", &first["state"]);
    assert_eq!(code_of(&resent), "Access-Challenge", "{resent}");
    assert_eq!(standin.sms().len(), 2);
    // The audit tells the resend from the first text.
    let rows = srv.audit_json("alice");
    assert!(
        rows[0]["reason"] == "another code sent by SMS (a resend); waiting for it"
            && rows[1]["reason"] == "code sent by SMS; waiting for it",
        "{rows:#?}"
    );
    std::thread::sleep(Duration::from_millis(10_500));
    let late = answer(&srv, "alice", "resend", &resent["state"]);
    assert_eq!(code_of(&late), "Access-Reject", "{late}");
    assert_eq!(standin.sms().len(), 2, "no third SMS");
    assert!(
        srv.audit_json("alice")[0]["reason"]
            .as_str()
            .unwrap()
            .contains("after the password check")
            && srv.audit_json("alice")[0]["mode"] == "sms",
        "{:#?}",
        srv.audit_json("alice")[0]
    );

    // A prompt open when the admin sets a new number cannot resend to the old one.
    let open = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&open), "Access-Challenge", "{open}");
    assert_eq!(standin.sms().len(), 3);
    let out = cli_ok(&srv, &["user", "set-phone", "alice", "+15550199"]);
    assert!(out.contains("1 open prompt(s) closed"), "{out}");
    let after = answer(&srv, "alice", "resend", &open["state"]);
    assert_eq!(code_of(&after), "Access-Reject", "{after}");
    assert_eq!(standin.sms().len(), 3, "nothing sent to the old number");
    // The next login goes to the new number.
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert_eq!(standin.sms().last().unwrap().to, "+15550199");
    // `user reset` closes the open prompts too.
    let out = cli_ok(&srv, &["user", "reset", "alice"]);
    assert!(out.contains("1 open prompt(s) closed"), "{out}");
    let after = answer(&srv, "alice", "resend", &r["state"]);
    assert_eq!(code_of(&after), "Access-Reject", "{after}");
}

/// The SMS client with `[lockout] threshold`, for the entry of two names.
fn sms_with_threshold(slapd: &common::slapd::Slapd, standin: &Standin, threshold: u32) -> Server {
    start(
        slapd,
        standin,
        "",
        &format!("\n[lockout]\nthreshold = {threshold}\n"),
        &sms_client(""),
    )
}

/// One entry, two names (`uid: jdoe`, `uid: john.doe`), its only factor the directory's
/// mobile number (nobody's stored state). The names share one allowance of wrong answers:
/// with a threshold of 2, one wrong answer under each locks the entry, and then neither
/// name gets an SMS. Unlocking the name the lock landed on frees both.
#[test]
fn the_names_of_one_entry_share_one_lockout() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = sms_with_threshold(&slapd, &standin, 2);
    for (n, name) in ["jdoe", "john.doe"].into_iter().enumerate() {
        let r = login(&srv, name, "jdoe-Secret-pw");
        assert_eq!(code_of(&r), "Access-Challenge", "{name}: {r}");
        let wrong = wrong_code(&standin, n);
        let a = answer(&srv, name, wrong, &r["state"]);
        assert_eq!(code_of(&a), "Access-Reject", "{name}: {a}");
    }
    assert_eq!(standin.sms().len(), 2);
    for name in ["jdoe", "john.doe"] {
        let r = login(&srv, name, "jdoe-Secret-pw");
        assert_eq!(code_of(&r), "Access-Reject", "{name}: {r}");
        assert!(message(&r).contains("Too many wrong codes"), "{name}: {r}");
        let rec = &srv.audit_json(name)[0];
        assert!(
            rec["reason"]
                .as_str()
                .unwrap()
                .starts_with("second factor locked"),
            "{name}: {rec}"
        );
    }
    assert_eq!(standin.sms().len(), 2, "no SMS under either name");
    // The lock landed on john.doe (the name of the answer that reached the threshold).
    cli_ok(&srv, &["user", "unlock", "john.doe"]);
    for name in ["jdoe", "john.doe"] {
        let r = login(&srv, name, "jdoe-Secret-pw");
        assert_eq!(code_of(&r), "Access-Challenge", "{name}: {r}");
    }
}

/// A prompt opened under one name ends when the entry is locked under its other name
/// meanwhile: the right code to jdoe's open prompt is refused once wrong answers under
/// john.doe have locked the entry, as it would be after a lock of jdoe's own.
#[test]
fn a_lock_under_the_other_name_ends_open_prompts() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = sms_with_threshold(&slapd, &standin, 2);
    let first = login(&srv, "jdoe", "jdoe-Secret-pw");
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    let good = standin.sms()[0].code();
    // Two logins under john.doe, a wrong answer to each: the second locks the entry.
    for n in 1..=2 {
        let other = login(&srv, "john.doe", "jdoe-Secret-pw");
        assert_eq!(code_of(&other), "Access-Challenge", "{other}");
        let wrong = wrong_code(&standin, n);
        let a = answer(&srv, "john.doe", wrong, &other["state"]);
        assert_eq!(code_of(&a), "Access-Reject", "{a}");
    }
    let audit = srv.audit_json("john.doe");
    assert!(audit.iter().any(|r| r["result"] == "lock"), "{audit:?}");
    let r = answer(&srv, "jdoe", &good, &first["state"]);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(message(&r).contains("Too many wrong codes"), "{r}");
    let rec = &srv.audit_json("jdoe")[0];
    assert_eq!(
        rec["reason"], "second factor locked under the entry's other name \"john.doe\"",
        "{rec}"
    );
}

/// A lock under one name holds for the entry's other name even when that one has a second
/// factor of its own: jdoe, locked for a wrong SMS code, then john.doe enrolled with a
/// token: john.doe's login is treated as locked, not given a prompt.
#[test]
fn a_lock_under_the_other_name_holds_for_an_enrolled_name() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = sms_with_threshold(&slapd, &standin, 1);
    let r = login(&srv, "jdoe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let wrong = wrong_code(&standin, 0);
    let a = answer(&srv, "jdoe", wrong, &r["state"]);
    assert_eq!(code_of(&a), "Access-Reject", "{a}");
    srv.enroll("john.doe", &[]);
    let r = login(&srv, "john.doe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(message(&r).contains("Too many wrong codes"), "{r}");
    assert_eq!(
        srv.audit_json("john.doe")[0]["reason"],
        "second factor locked under the entry's other name \"jdoe\""
    );
}

/// `user unlock` of an entry's other name lifts the entry's day of sends: they are counted
/// under one key for all its names (jdoe's), and unlocking john.doe forgot nothing, so the
/// helpdesk's unlock left the user without texts until the next day.
#[test]
fn unlock_of_the_other_name_lifts_the_entrys_sends() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "max_per_user_per_day = 1\n",
        "",
        &sms_client(""),
    );
    let r = login(&srv, "john.doe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    let r = login(&srv, "john.doe", "jdoe-Secret-pw");
    assert!(message(&r).contains("Try again tomorrow"), "{r}");
    let o = srv.cli(&["user", "unlock", "john.doe"]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && said.contains("1 send(s) no longer counted"),
        "{o:?}"
    );
    let r = login(&srv, "john.doe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    assert_eq!(standin.sms().len(), 2);
}

/// `user show` and `user unlock` of a name whose entry is locked under its other name say
/// so, and which name to unlock: they said "locked: no" and "was not locked" while the
/// name's logins were still refused for too many wrong codes.
#[test]
fn show_and_unlock_name_a_lock_under_the_other_name() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = sms_with_threshold(&slapd, &standin, 1);
    let r = login(&srv, "jdoe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let a = answer(&srv, "jdoe", wrong_code(&standin, 0), &r["state"]);
    assert_eq!(code_of(&a), "Access-Reject", "{a}");
    let out = |args: &[&str]| {
        let o = srv.cli(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    // With nothing stored under john.doe (the number is the directory's): the lock is still
    // said, not "no tokens and no second-factor state".
    let show = out(&["user", "show", "john.doe"]);
    assert!(
        show.contains("under the entry's other name jdoe until"),
        "{show}"
    );
    srv.enroll("john.doe", &[]);
    let show = out(&["user", "show", "john.doe"]);
    assert!(
        show.contains("locked:   not under this name")
            && show.contains("under the entry's other name jdoe until")
            && show.contains("`radmfa user unlock jdoe` lifts it"),
        "{show}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&out(&["user", "show", "john.doe", "--json"])).unwrap();
    assert_eq!(json["locked_until"], serde_json::Value::Null, "{json}");
    assert_eq!(
        json["locked_under_other_names"][0]["user"], "jdoe",
        "{json}"
    );
    let unlock = out(&["user", "unlock", "john.doe"]);
    assert!(
        unlock.contains("john.doe: was not locked")
            && unlock.contains(
                "john.doe: still refused: locked under the entry's other name jdoe; run \
                 `radmfa user unlock jdoe`"
            ),
        "{unlock}"
    );
    let unlock = out(&["user", "unlock", "jdoe"]);
    assert!(unlock.contains("jdoe: unlocked"), "{unlock}");
    let show = out(&["user", "show", "john.doe"]);
    assert!(show.contains("locked:   no"), "{show}");
    let r = login(&srv, "john.doe", "jdoe-Secret-pw");
    assert_ne!(code_of(&r), "Access-Reject", "{r}");
}

/// A server (threshold 3, TOTP and SMS) where john.doe, whose only factor is the entry's
/// directory mobile, has answered two SMS prompts wrong.
fn two_wrong_answers_under_john_doe(slapd: &common::slapd::Slapd, standin: &Standin) -> Server {
    let srv = start(
        slapd,
        standin,
        "",
        "\n[lockout]\nthreshold = 3\n",
        &[client("vpn", "127.0.0.1", "methods = [\"totp\", \"sms\"]")],
    );
    for n in 0..2 {
        let r = login(&srv, "john.doe", "jdoe-Secret-pw");
        assert_eq!(code_of(&r), "Access-Challenge", "{r}");
        let a = answer(&srv, "john.doe", wrong_code(standin, n), &r["state"]);
        assert_eq!(code_of(&a), "Access-Reject", "{a}");
    }
    srv
}

/// The names share one allowance across factors too: wrong SMS answers under john.doe count
/// toward the lock of jdoe's TOTP codes (threshold 3: two answers there, then one wrong code
/// here locks the entry; each name had its own count of guesses for codes before).
#[test]
fn wrong_answers_under_one_name_count_toward_the_other_names_codes() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = two_wrong_answers_under_john_doe(&slapd, &standin);
    let seed = srv.enroll("jdoe", &[]);
    let r = login(&srv, "jdoe", "jdoe-Secret-pw");
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    let good = totp(&seed, now(), &[]);
    let wrong = if good == "123456" { "654321" } else { "123456" };
    let a = answer(&srv, "jdoe", wrong, &r["state"]);
    assert_eq!(code_of(&a), "Access-Reject", "{a}");
    let audit = srv.audit_json("jdoe");
    let lock = audit
        .iter()
        .find(|r| r["result"] == "lock")
        .unwrap_or_else(|| panic!("one wrong code after two under john.doe: {audit:#?}"));
    // Not an admin's act, through the NAS of the last wrong code, and the count explained.
    assert_eq!(
        (lock["mode"].as_str(), lock["nas_name"].as_str()),
        (Some("lockout"), Some("vpn")),
        "{lock}"
    );
    assert!(
        lock["reason"]
            .as_str()
            .unwrap()
            .starts_with("3 consecutive wrong codes (2 of them under the entry's other names);"),
        "{lock}"
    );
}

/// A right code under one name forgets the wrong answers counted under the entry's other
/// names too: the entry's next typo is not a lock long after the answers that counted.
#[test]
fn a_right_code_forgets_the_other_names_wrong_answers() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = two_wrong_answers_under_john_doe(&slapd, &standin);
    let seed = srv.enroll("jdoe", &[]);
    let r = login(&srv, "jdoe", "jdoe-Secret-pw");
    let a = answer(&srv, "jdoe", &totp(&seed, now(), &[]), &r["state"]);
    assert_eq!(code_of(&a), "Access-Accept", "{a}");
    // Without the forgetting, this typo would lock: 2 under john.doe, threshold 3.
    let r = login(&srv, "jdoe", "jdoe-Secret-pw");
    let a = answer(&srv, "jdoe", "000000", &r["state"]);
    assert_eq!(code_of(&a), "Access-Reject", "{a}");
    let audit = srv.audit_json("jdoe");
    assert!(
        !audit.iter().any(|r| r["result"] == "lock"),
        "one typo after a right code: {audit:#?}"
    );
}

/// The SMS limit is per person: the two names of one entry share `max_per_user`, so a
/// second name does not bring a second allowance of texts to the same directory mobile.
#[test]
fn the_names_of_one_entry_share_one_sms_limit() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "max_per_user = 2\n", "", &sms_client(""));
    for name in ["jdoe", "john.doe"] {
        let r = login(&srv, name, "jdoe-Secret-pw");
        assert_eq!(code_of(&r), "Access-Challenge", "{name}: {r}");
    }
    for name in ["john.doe", "jdoe"] {
        let r = login(&srv, name, "jdoe-Secret-pw");
        assert_eq!(code_of(&r), "Access-Reject", "{name}: {r}\n{}", srv.log());
        let rec = &srv.audit_json(name)[0];
        let reason = rec["reason"].as_str().unwrap();
        assert!(
            reason.contains("rate limit") && reason.contains("user:jdoe"),
            "{name}: {rec}"
        );
    }
    assert_eq!(standin.sms().len(), 2);
}

/// Accounts pointed at one number share its allowance: a list of stolen passwords whose
/// accounts all carry one (premium-rate, "pumping") number gets `max_per_user` texts to it
/// per window, not that many per account. alice and bob share the test directory's mobile.
#[test]
fn accounts_sharing_a_number_share_its_sms_limit() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "max_per_user = 2\n", "", &sms_client(""));
    for (name, pw) in [("alice", ALICE_PW), ("alice", ALICE_PW)] {
        let r = login(&srv, name, pw);
        assert_eq!(code_of(&r), "Access-Challenge", "{name}: {r}");
    }
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let rec = &srv.audit_json("bob")[0];
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains("rate limit") && reason.ends_with("reached for the number it goes to"),
        "{rec}"
    );
    assert_eq!(standin.sms().len(), 2);
}

/// A lock that comes while the password is being checked (wrong codes counted meanwhile,
/// on another prompt or node) stops the SMS: the lockout is read again before a send.
/// Here slapd is frozen while the login waits on it, and the lock is written then.
#[test]
fn a_lock_that_comes_during_the_password_check_stops_the_sms() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    slapd.signal("-STOP");
    let login = {
        let port = srv.port();
        std::thread::spawn(move || {
            common::peers::pyrad(
                port,
                SECRET,
                &["--user", "alice", "--password", ALICE_PW, "--timeout", "10"],
            )
        })
    };
    // The login waits on the frozen directory (past its first lockout read) before the
    // lock lands.
    slapd.wait_for_unread_request();
    let db = rusqlite::Connection::open(srv.dir.path().join("radmfa.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "INSERT INTO user_state (user, failures, locked_until) VALUES ('alice', 5, ?1) \
         ON CONFLICT (user) DO UPDATE SET failures = 5, locked_until = ?1",
        [now() + 900],
    )
    .unwrap();
    drop(db);
    slapd.signal("-CONT");
    let r = login.join().unwrap();
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(message(&r).contains("Too many wrong codes"), "{r}");
    assert!(standin.sms().is_empty(), "an SMS went to a locked user");
}

/// A "resend" refused by the send limit leaves the prompt it was typed at: the code already
/// sent to it (slow to arrive, which is why the user asked again) still finishes the login.
/// The prompt was taken first and lost with the refusal, so that code was useless.
#[test]
fn a_resend_over_the_limit_keeps_the_prompt_and_its_code() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "max_per_user = 2\n", "", &sms_client(""));
    let first = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    let resent = answer(&srv, "alice", "resend", &first["state"]);
    assert_eq!(code_of(&resent), "Access-Challenge", "{resent}");
    assert_eq!(standin.sms().len(), 2);
    // The third send is over the limit: refused, and said so, on the same prompt.
    let again = answer(&srv, "alice", "resend", &resent["state"]);
    assert_eq!(code_of(&again), "Access-Challenge", "{again}");
    assert_eq!(again["state"], resent["state"]);
    assert!(message(&again).contains("Too many"), "{again}");
    assert_eq!(standin.sms().len(), 2, "nothing more was sent");
    let code = standin.sms()[1].code();
    let ok = answer(&srv, "alice", &code, &resent["state"]);
    assert_eq!(code_of(&ok), "Access-Accept", "{ok}\n{}", srv.log());
}

/// A resend the provider fails, on a client with SMS alone: the prompt stays, and the
/// user is not told to "use another method", which the prompt does not offer.
#[test]
fn a_failed_resend_with_no_other_method_offers_none() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    let first = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    standin.fail_sms(Some((503, 20503, "Service Unavailable")));
    let again = answer(&srv, "alice", "resend", &first["state"]);
    assert_eq!(code_of(&again), "Access-Challenge", "{again}");
    let said = message(&again);
    assert!(
        said.starts_with("The code could not be sent. Try again later. Enter the code")
            && !said.contains("another method"),
        "{again}"
    );
    // The first code still finishes the login.
    standin.fail_sms(None);
    let code = standin.sms()[0].code();
    let ok = answer(&srv, "alice", &code, &again["state"]);
    assert_eq!(code_of(&ok), "Access-Accept", "{ok}\n{}", srv.log());
}

/// Users type "resend" because the first text is slow; then it arrives, and its code is
/// typed at the new prompt. It finishes the login, as the newest code does (before, it was
/// a wrong code, counted towards the lockout). Once, and for this login only.
#[test]
fn the_code_of_an_sms_sent_before_a_resend_still_finishes_the_login() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    let first = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    let resent = answer(&srv, "alice", "resend", &first["state"]);
    let again = answer(&srv, "alice", "resend", &resent["state"]);
    assert_eq!(code_of(&again), "Access-Challenge", "{again}");
    let sent = standin.sms();
    assert_eq!(sent.len(), 3);
    let ok = answer(&srv, "alice", &sent[0].code(), &again["state"]);
    assert_eq!(code_of(&ok), "Access-Accept", "{ok}\n{}", srv.log());
    let audit = srv.audit_json("alice");
    assert!(
        audit.iter().all(|r| r["reason"] != "wrong SMS code"),
        "counted as a wrong code: {audit:#?}"
    );

    // Another login: the first login's codes, used or not, do not finish it.
    let next = login(&srv, "alice", ALICE_PW);
    let next = answer(&srv, "alice", "resend", &next["state"]);
    assert_eq!(code_of(&next), "Access-Challenge", "{next}");
    for old in [sent[0].code(), sent[1].code()] {
        let r = answer(&srv, "alice", &old, &next["state"]);
        assert_ne!(code_of(&r), "Access-Accept", "{r}");
        if code_of(&r) == "Access-Reject" {
            break;
        }
    }
}

/// An earlier SMS's code is taken only while it is valid: after its lifetime it is refused,
/// even though the newer prompt is still open.
#[test]
fn the_code_of_an_earlier_sms_expires_with_it() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "code_ttl_secs = 2", "", &sms_client(""));
    let first = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&first), "Access-Challenge", "{first}");
    std::thread::sleep(Duration::from_millis(2200));
    let resent = answer(&srv, "alice", "resend", &first["state"]);
    assert_eq!(code_of(&resent), "Access-Challenge", "{resent}");
    // Not counted toward the lockout, though: it is the user's own code, late (review).
    let r = answer(&srv, "alice", &standin.sms()[0].code(), &resent["state"]);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(message(&r), "That code has expired.", "{r}");
    let reason = srv.audit_json("alice")[0]["reason"].clone();
    assert!(
        reason
            .as_str()
            .is_some_and(|s| s.starts_with("SMS code expired (")),
        "{reason}"
    );
    let show = user_show(&srv, "alice");
    assert_eq!(show["failures"], 0, "{show}");
}

#[test]
fn sixth_sms_in_five_minutes_is_refused_and_resend_counts() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    // Four logins and one "resend" at the prompt: five sends.
    let mut last = serde_json::Value::Null;
    for _ in 0..4 {
        last = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&last), "Access-Challenge", "{last}");
    }
    assert!(
        message(&last).contains("resend"),
        "prompt offers resend: {last}"
    );
    let resent = answer(&srv, "alice", "resend", &last["state"]);
    assert_eq!(code_of(&resent), "Access-Challenge", "{resent}");
    let sent = standin.sms();
    assert_eq!(sent.len(), 5);
    // The resent code works on the new prompt.
    let ok = answer(&srv, "alice", &sent[4].code(), &resent["state"]);
    assert_eq!(code_of(&ok), "Access-Accept", "{ok}");

    let sixth = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&sixth), "Access-Reject", "{sixth}");
    assert!(message(&sixth).contains("Too many"), "{sixth}");
    assert_eq!(standin.sms().len(), 5, "the sixth was not sent");
    let audit = srv.audit_json("alice");
    assert!(
        audit[0]["reason"].as_str().unwrap().contains("rate limit"),
        "{:#?}",
        audit[0]
    );
    // Another user is not affected by alice's limit; a stored number wins over the directory's
    // and is normalised to E.164.
    let out = cli_ok(&srv, &["user", "set-phone", "Bob", "+1 (555) 010-2"]);
    assert!(out.contains("+15550102"), "{out}");
    let r = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    assert!(message(&r).contains("****0102"), "{r}");
    assert_eq!(standin.sms().last().unwrap().to, "+15550102");
    assert!(!srv
        .cli(&["user", "set-phone", "bob", "call me"])
        .status
        .success());
}

#[test]
fn retransmitted_request_sends_one_sms() {
    let slapd = directory();
    let standin = Standin::start();
    // A slow provider: the retransmits arrive while the first copy is still sending.
    standin.set_sms_delay(Duration::from_millis(800));
    let srv = start(&slapd, &standin, "", "", &sms_client(""));
    let sock = srv.udp();
    let (pkt, _) = AccessRequestBuilder::new(77, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    for _ in 0..3 {
        sock.send(&pkt).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut replies = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        replies.push(buf[..n].to_vec());
    }
    // After it completed: the cached reply.
    sock.send(&pkt).unwrap();
    let n = sock.recv(&mut buf).expect("cached reply");
    replies.push(buf[..n].to_vec());
    // One reply for the three copies in flight (as FreeRADIUS answers), and the cached
    // one for the copy after it.
    assert_eq!(replies.len(), 2, "one reply in flight, one cached");
    assert!(
        replies.windows(2).all(|w| w[0] == w[1]),
        "identical replies"
    );
    assert_eq!(parse_reply(&replies[0]).unwrap().code, 11);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(standin.sms().len(), 1, "one SMS for one request");
}

#[test]
fn method_switch_from_totp_to_sms_at_the_prompt() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &[client("vpn", "127.0.0.1", "")]);
    let seed = srv.enroll("alice", &[]);
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge");
    let prompt = message(&r1);
    assert!(prompt.contains("authenticator app"), "{prompt}");
    assert!(
        prompt.contains("sms") && prompt.contains("call"),
        "{prompt}"
    );
    assert!(standin.sms().is_empty(), "TOTP first: nothing sent yet");

    let r2 = answer(&srv, "alice", "sms", &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}");
    assert!(message(&r2).contains("****0100"), "{r2}");
    assert_ne!(r2["state"], r1["state"]);
    let code = standin.wait_sms(1, Duration::from_secs(2))[0].code();
    // The old TOTP prompt is gone.
    let late = answer(&srv, "alice", &totp(&seed, now(), &[]), &r1["state"]);
    assert_eq!(code_of(&late), "Access-Reject");
    let r3 = answer(&srv, "alice", &code, &r2["state"]);
    assert_eq!(code_of(&r3), "Access-Accept", "{r3}");
    assert_eq!(srv.audit_json("alice")[0]["mode"], "sms");

    // The user's default method is honoured: set-method sms sends at once.
    cli_ok(&srv, &["user", "set-method", "alice", "sms"]);
    let r4 = login(&srv, "alice", ALICE_PW);
    assert!(message(&r4).starts_with("Enter the code sent to"), "{r4}");
    assert_eq!(standin.sms().len(), 2);
}

/// A reload that takes a method off a client closes the prompts waiting on it: alice's
/// texted code and bob's app code, each asked for before the reload, are refused, and the
/// audit says why. An SMS prompt still let its user in for as long as it stayed open (up
/// to an hour), with SMS dropped after an SMS-pumping incident.
#[test]
fn a_reload_that_drops_a_method_closes_its_prompts() {
    let slapd = directory();
    let standin = Standin::start();
    let both = client("vpn", "127.0.0.1", "methods = [\"totp\", \"sms\"]");
    let srv = start(&slapd, &standin, "", "", std::slice::from_ref(&both));
    let seed = srv.enroll("bob", &[]);
    let reload = |from: &str, to: &str, n: usize| {
        let text = std::fs::read_to_string(&srv.config).unwrap();
        assert!(text.contains(from));
        std::fs::write(&srv.config, text.replace(from, to)).unwrap();
        assert_eq!(srv.reload(n), n, "{}", srv.log());
    };

    let sms = login(&srv, "alice", ALICE_PW);
    assert!(message(&sms).starts_with("Enter the code sent to"), "{sms}");
    let texted = standin.wait_sms(1, Duration::from_secs(2))[0].code();
    let app = login(&srv, "bob", BOB_PW);
    assert!(message(&app).contains("authenticator app"), "{app}");
    let totp_only = client("vpn", "127.0.0.1", "methods = [\"totp\"]");
    reload(&both, &totp_only, 1);
    let r = answer(&srv, "alice", &texted, &sms["state"]);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert_eq!(
        srv.audit_json("alice")[0]["reason"],
        "method sms is no longer one of client \"vpn\"'s methods (changed by a reload since \
         the prompt)"
    );
    // bob's app code still finishes: totp was kept.
    let r = answer(&srv, "bob", &totp(&seed, now(), &[]), &app["state"]);
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());

    let app = login(&srv, "bob", BOB_PW);
    assert_eq!(code_of(&app), "Access-Challenge", "{app}");
    let sms_only = client("vpn", "127.0.0.1", "methods = [\"sms\"]");
    reload(&totp_only, &sms_only, 2);
    let r = answer(&srv, "bob", &totp(&seed, now() + 30, &[]), &app["state"]);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(
        srv.audit_json("bob")[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("method totp is no longer one of client"),
        "{}",
        srv.audit_json("bob")[0]
    );
}

#[test]
fn client_without_voice_never_offers_or_places_a_call() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client("vpn", "127.0.0.1", "methods = [\"totp\", \"sms\"]")];
    let srv = start(&slapd, &standin, "", "", &clients);
    srv.enroll("alice", &[]);
    // Even a user whose default is voice gets no call here.
    cli_ok(&srv, &["user", "set-method", "alice", "voice"]);
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge");
    let prompt = message(&r1);
    assert!(prompt.contains("sms"), "{prompt}");
    assert!(!prompt.contains("call"), "voice offered: {prompt}");
    // Asked for anyway: the same prompt again, no call, nothing counted.
    let r2 = answer(&srv, "alice", "call", &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}");
    assert_eq!(r2["state"], r1["state"]);
    assert!(message(&r2).contains("is not available here"), "{r2}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(standin.calls().is_empty(), "a call was placed");
}

/// An app password's hash covers its user: copied into another user's row by whoever can
/// write to the database (without the key file), it does not let its password in as that
/// user, and an argon2id hash made up for a user (the form earlier releases stored, which
/// needs no key) is refused unless `[store] legacy_app_passwords = true`. Both were an
/// Access-Accept with no password and no second factor (red team).
#[test]
fn an_app_password_is_bound_to_its_user_in_the_database() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client("legacy-mail", "127.0.0.1", "app_passwords = true")];
    let srv = start(&slapd, &standin, "", "", &clients);
    let bobs = cli_ok(&srv, &["user", "app-password", "add", "bob"]);
    let bobs = bobs.trim().to_string();
    assert_eq!(code_of(&login(&srv, "bob", &bobs)), "Access-Accept");
    let db = rusqlite::Connection::open(srv.dir.path().join("radmfa.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "INSERT INTO app_passwords (user, label, hash, created_at) \
         SELECT 'alice', 'planted', hash, created_at FROM app_passwords WHERE user = 'bob'",
        [],
    )
    .unwrap();
    let r = login(&srv, "alice", &bobs);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    // An argon2id hash of a password of the attacker's own, as an earlier release stored.
    let made_up = "forged-forged-forged";
    let phc = radmfa::mfa::app_password::hash(&radmfa::secret::Secret::from(made_up)).unwrap();
    db.execute(
        "INSERT INTO app_passwords (user, label, hash, created_at) VALUES ('alice', 'x', ?1, 0)",
        [&phc],
    )
    .unwrap();
    drop(db);
    let r = login(&srv, "alice", made_up);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let audit = srv.audit_json("alice");
    assert!(
        audit.iter().any(|a| a["result"] == "reject"
            && a["mode"] == "app-password"
            && a["reason"]
                .as_str()
                .is_some_and(|r| r.contains("a form from before they were bound"))),
        "{audit:?}"
    );
    let list = cli_ok(&srv, &["user", "app-password", "list", "alice", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let old: Vec<bool> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["old_form"].as_bool().unwrap())
        .collect();
    assert_eq!(old, [false, true], "{list}");
    // Allowed while users move to re-issued ones (and config check warns).
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let store = "key_file = \"radmfa.key\"\n";
    assert!(text.contains(store), "{text}");
    std::fs::write(
        &srv.config,
        text.replacen(store, &format!("{store}legacy_app_passwords = true\n"), 1),
    )
    .unwrap();
    let check = srv.cli(&["config", "check"]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("warning: store: legacy_app_passwords = true"),
        "{said}"
    );
    // A reload applies it, both ways, and says so (it had been left as it was, unsaid).
    assert_eq!(srv.reload(1), 1);
    assert!(
        srv.log_shows("reload: store.legacy_app_passwords = true in use from the next request"),
        "{}",
        srv.log()
    );
    assert_eq!(code_of(&login(&srv, "alice", made_up)), "Access-Accept");
    // The bound one stays bob's.
    assert_eq!(code_of(&login(&srv, "alice", &bobs)), "Access-Reject");
    assert_eq!(code_of(&login(&srv, "bob", &bobs)), "Access-Accept");
    std::fs::write(&srv.config, &text).unwrap();
    assert_eq!(srv.reload(2), 2);
    assert!(srv.log_shows("store.legacy_app_passwords = false in use"));
    assert_eq!(code_of(&login(&srv, "alice", made_up)), "Access-Reject");
    assert!(!srv.log().contains("after a restart"), "{}", srv.log());
}

#[test]
fn app_passwords_on_legacy_clients_only_and_delete_all_revokes() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [
        client(
            "legacy-mail",
            "127.0.0.1",
            "app_passwords = true\nrequire_message_authenticator = false",
        ),
        client("vpn", "127.0.0.2", ""),
    ];
    let srv = start(&slapd, &standin, "", "", &clients);
    srv.enroll("alice", &[]);
    let pw = cli_ok(
        &srv,
        &[
            "user",
            "app-password",
            "add",
            "alice",
            "--label",
            "old phone",
        ],
    );
    let pw = pw.trim().to_string();
    assert_eq!(pw.len(), 24, "{pw}");
    let second = cli_ok(&srv, &["user", "app-password", "add", "Alice"]);
    assert_ne!(second.trim(), pw);
    let list = cli_ok(&srv, &["user", "app-password", "list", "alice", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["label"], "old phone");
    assert!(!list.to_string().contains(&pw), "list shows no password");

    let legacy = |p: &str| py(&srv, &["--user", "alice", "--password", p]);
    let r = legacy(&pw);
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    // Typed without dashes and in capitals: still the same password.
    assert_eq!(
        code_of(&legacy(&pw.replace('-', "").to_uppercase())),
        "Access-Accept"
    );
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["mode"], "app-password");
    assert_eq!(rec["nas_name"], "legacy-mail");
    // Through OpenVPN's static challenge (SCRV1:password:code), with or without something
    // typed in the code field: the password part is the app password.
    for typed in ["", "anything"] {
        use data_encoding::BASE64;
        let field = format!(
            "SCRV1:{}:{}",
            BASE64.encode(pw.as_bytes()),
            BASE64.encode(typed.as_bytes())
        );
        assert_eq!(code_of(&legacy(&field)), "Access-Accept", "code {typed:?}");
    }
    // A wrong app password falls through to the directory password, which it is not.
    assert_eq!(
        code_of(&legacy("abcd-efgh-jkmn-pqrs-tuvw")),
        "Access-Reject"
    );
    // The directory password still leads to the second factor there.
    assert_eq!(code_of(&legacy(ALICE_PW)), "Access-Challenge");
    // The second factor's lockout (five wrong codes) does not stop an app password: it
    // guards codes against guessing, and an app password is none (conf/radmfa.toml).
    for _ in 0..5 {
        let r = legacy(ALICE_PW);
        let state = r["state"].as_str().expect("a code prompt").to_string();
        let r = py(
            &srv,
            &["--user", "alice", "--password", "000000", "--state", &state],
        );
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
    }
    let shown = cli_ok(&srv, &["user", "show", "alice"]);
    assert!(shown.contains("locked:   until"), "{shown}");
    assert_eq!(code_of(&legacy(&pw)), "Access-Accept");
    cli_ok(&srv, &["user", "unlock", "alice"]);

    // A client that does not allow app passwords refuses it.
    let on_vpn = |pw: &str| {
        py(
            &srv,
            &["--bind", "127.0.0.2", "--user", "alice", "--password", pw],
        )
    };
    let vpn = on_vpn(&pw);
    assert_eq!(code_of(&vpn), "Access-Reject", "{vpn}");

    // Deleting one keeps the other; delete-all revokes at once.
    let id = list[1]["id"].as_i64().unwrap().to_string();
    cli_ok(&srv, &["user", "app-password", "delete", "alice", &id]);
    assert_eq!(code_of(&legacy(second.trim())), "Access-Reject");
    assert_eq!(code_of(&legacy(&pw)), "Access-Accept");
    let out = cli_ok(&srv, &["user", "app-password", "delete-all", "alice"]);
    assert!(out.contains("1 app password(s) deleted"), "{out}");
    assert_eq!(code_of(&legacy(&pw)), "Access-Reject");

    // `user reset` (a lost or compromised device) takes app passwords and a waiting bypass
    // with the tokens: nothing that stands in for the second factor is left.
    let pw = cli_ok(&srv, &["user", "app-password", "add", "alice"]);
    assert_eq!(code_of(&legacy(pw.trim())), "Access-Accept");
    cli_ok(&srv, &["user", "bypass", "alice"]);
    let out = cli_ok(&srv, &["user", "reset", "alice"]);
    assert!(
        out.contains("1 app password(s) deleted, the waiting bypass cancelled"),
        "{out}"
    );
    assert_eq!(code_of(&legacy(pw.trim())), "Access-Reject");
    let vpn = on_vpn(ALICE_PW);
    assert_ne!(code_of(&vpn), "Access-Accept", "no bypass left: {vpn}");

    // An app password belongs to the directory entry that first used it, known by its
    // entryUUID: the entry renamed (a new DN, the same entry) keeps it.
    let bobs = cli_ok(&srv, &["user", "app-password", "add", "bob"]);
    let bob = |p: &str| py(&srv, &["--user", "bob", "--password", p]);
    assert_eq!(code_of(&bob(bobs.trim())), "Access-Accept");
    slapd.modify(
        "dn: uid=bob,ou=people,dc=example,dc=org\nchangetype: modrdn\n\
         newrdn: cn=bob-renamed\ndeleteoldrdn: 0\n",
    );
    let r = bob(bobs.trim());
    assert_eq!(code_of(&r), "Access-Accept", "{r}");

    // The same DN is not the same entry: alice leaves, her entry is deleted, and a new
    // hire's is made under her name. Her app password must not log in to the new account,
    // whether she used it before she left or not (one never used was bound to whoever
    // used it first: red team).
    let alices = cli_ok(&srv, &["user", "app-password", "add", "alice"]);
    assert_eq!(code_of(&legacy(alices.trim())), "Access-Accept");
    let unused = cli_ok(&srv, &["user", "app-password", "add", "alice"]);
    slapd.modify(
        "dn: uid=alice,ou=people,dc=example,dc=org\nchangetype: delete\n\n\
         dn: uid=alice,ou=people,dc=example,dc=org\nchangetype: add\n\
         objectClass: inetOrgPerson\nuid: alice\ncn: Alice Newhire\nsn: Newhire\n\
         userPassword: new-hire-password\n",
    );
    for pw in [&alices, &unused] {
        let r = legacy(pw.trim());
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
        let rec = &srv.audit_json("alice")[0];
        let reason = rec["reason"].as_str().unwrap();
        assert!(
            reason.contains("app password of another directory entry (entryUUID:")
                && reason.contains("deleted and made again"),
            "{rec}"
        );
    }
    // The new hire's own password passes (the entry, not the name, was refused); she has
    // no second factor yet.
    on_vpn("new-hire-password");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["reason"], "no second factor enrolled", "{rec}");
}

/// An app password binds no user, so Active Directory never gets to say the account has
/// expired: `enabled_filter` with `{now_filetime}` says it for AD. Before the placeholder,
/// a contractor whose account expired kept logging in with their app passwords.
/// The lost laptop's app passwords, revoked under one name of a directory entry, are
/// revoked under its other names too: its mail client may have used either (jdoe and
/// john.doe are one entry). delete-all under jdoe left john.doe's working. A reset under
/// one name says what the other still holds.
#[test]
fn delete_all_revokes_the_app_passwords_of_every_name_of_the_entry() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let clients = [client("legacy-mail", "127.0.0.1", "app_passwords = true")];
    let srv = start(&slapd, &standin, "", "", &clients);
    let under = |name: &str| {
        let pw = cli_ok(&srv, &["user", "app-password", "add", name]);
        pw.trim().to_string()
    };
    let (jdoe, john) = (under("jdoe"), under("john.doe"));
    let try_as = |name: &str, pw: &str| code_of(&login(&srv, name, pw)).to_string();
    assert_eq!(try_as("jdoe", &jdoe), "Access-Accept");
    assert_eq!(try_as("john.doe", &john), "Access-Accept");

    let out = srv.cli(&["user", "app-password", "delete-all", "jdoe"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("jdoe: 1 app password(s) deleted")
            && said.contains(
                "john.doe (another name of this directory entry): 1 app password(s) deleted"
            ),
        "{said}"
    );
    assert_eq!(try_as("jdoe", &jdoe), "Access-Reject");
    assert_eq!(try_as("john.doe", &john), "Access-Reject");
    assert_eq!(
        srv.audit_json("john.doe")
            .iter()
            .find(|r| r["result"] == "app-password-delete-all")
            .map(|r| r["reason"].clone()),
        Some(serde_json::json!(
            "1 deleted with those of jdoe (another name of its directory entry)"
        )),
        "{:?}",
        srv.audit_json("john.doe")
    );

    // A reset under one name leaves the other's app password, and says so.
    let john = under("john.doe");
    srv.enroll("jdoe", &[]);
    let out = srv.cli(&["user", "reset", "jdoe"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "note: jdoe's directory entry is also named john.doe, which still holds 1 app \
             password(s)"
        ),
        "{err}"
    );
    assert_eq!(try_as("john.doe", &john), "Access-Accept");
}

#[test]
fn app_password_of_an_expired_account_is_refused() {
    use common::slapd::{LdapUser, Slapd, SlapdOptions};
    // 2100-01-01 and 2020-01-01 in AD's 100 ns intervals since 1601.
    let (future, past) = ("157469184000000000", "132223104000000000");
    let slapd = Slapd::start_with(
        &[LdapUser::new("alice", ALICE_PW)],
        SlapdOptions {
            extra_ldif: format!(
                "dn: uid=carol,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                 objectClass: radmfaTestAdUser\nuid: carol\ncn: Carol\nsn: Carol\n\
                 accountExpires: {future}\nuserPassword: carol-pw\n\n"
            ),
            ad_like_schema: true,
            ..Default::default()
        },
    );
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.ldap_extra = "enabled_filter = \"(|(!(accountExpires=*))(accountExpires=0)\
                    (accountExpires>={now_filetime}))\""
        .into();
    o.extra = client("legacy-mail", "127.0.0.1", "app_passwords = true");
    let srv = Server::start(&o);
    let carol = cli_ok(&srv, &["user", "app-password", "add", "carol"]);
    let alice = cli_ok(&srv, &["user", "app-password", "add", "alice"]);
    let app = |user: &str, pw: &str| py(&srv, &["--user", user, "--password", pw.trim()]);
    assert_eq!(code_of(&app("carol", &carol)), "Access-Accept");
    assert_eq!(
        code_of(&app("alice", &alice)),
        "Access-Accept",
        "no expiry set"
    );

    slapd.modify(&format!(
        "dn: uid=carol,ou=people,dc=example,dc=org\nchangetype: modify\n\
         replace: accountExpires\naccountExpires: {past}\n"
    ));
    let r = app("carol", &carol);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let rec = &srv.audit_json("carol")[0];
    assert_eq!(rec["mode"], "app-password", "{rec}");
    assert_eq!(rec["result"], "reject", "{rec}");
    assert_eq!(code_of(&app("alice", &alice)), "Access-Accept");
}

#[test]
fn no_sms_code_or_app_password_in_logs_or_audit() {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "methods = [\"sms\"]\napp_passwords = true",
    )];
    let mut srv = start_logged(&slapd, &standin, "", "", &clients, "debug");
    let pw = cli_ok(&srv, &["user", "app-password", "add", "alice"]);
    let pw = pw.trim().to_string();
    assert_eq!(code_of(&login(&srv, "alice", &pw)), "Access-Accept");
    let r1 = login(&srv, "alice", ALICE_PW);
    let code = standin.sms()[0].code();
    assert_eq!(
        code_of(&answer(&srv, "alice", &code, &r1["state"])),
        "Access-Accept"
    );
    let r2 = login(&srv, "alice", ALICE_PW);
    answer(&srv, "alice", "987654", &r2["state"]);
    let code2 = standin.sms()[1].code();
    srv.stop();
    let mut log = srv.log();
    assert!(log.contains("DEBUG"), "debug logging was on");
    log.push_str(&String::from_utf8_lossy(
        &srv.cli(&["audit", "--json", "--limit", "100"]).stdout,
    ));
    for (what, s) in [
        ("SMS code", code.as_str()),
        ("unused SMS code", code2.as_str()),
        ("wrong SMS code", "987654"),
        ("app password", pw.as_str()),
        ("app password, normalised", pw.replace('-', "").as_str()),
        ("Twilio auth token", common::provider_standin::AUTH_TOKEN),
    ] {
        assert!(!reveals(&log, s), "{what} appears in the log/audit output");
    }
    // The database holds neither the code nor the app password.
    let db = std::fs::read(srv.dir.path().join("radmfa.db")).expect("the database file");
    let wal = std::fs::read(srv.dir.path().join("radmfa.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!reveals(&hay, &code), "the SMS code is in the database");
        assert!(!hay.contains(&pw) && !hay.contains(&pw.replace('-', "")));
    }
}

/// Behind an egress proxy: the providers are reached through the proxy the standard
/// variables name (here `http_proxy`, as systemd's `Environment=` would set it), with a real
/// tinyproxy in between; the start-up log says so, naming the variable, not its value.
#[test]
fn sms_goes_through_the_proxy_the_environment_names() {
    let slapd = directory();
    let standin = Standin::start();
    let proxy = Tinyproxy::start();
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!("{}{}", delivery(&standin, ""), sms_client("").concat());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &o);
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--config").arg(&config).arg("serve");
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("http_proxy", proxy.url());
    let srv = Server::spawn(dir, config, cmd);

    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let sent = standin.sms();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let r2 = answer(&srv, "alice", &sent[0].code(), &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
    let through = format!(
        "POST {}/2010-04-01/Accounts/",
        standin.url.trim_end_matches('/')
    );
    assert!(
        proxy.log().contains(&through),
        "the SMS did not go through the proxy; its log:\n{}",
        proxy.log()
    );
    assert!(
        srv.log().contains(
            "SMS and call providers are reached through the proxy settings in http_proxy"
        ),
        "{}",
        srv.log()
    );
    assert!(
        !srv.log().contains(&proxy.url()),
        "the proxy URL may hold a password"
    );
}

/// The undelivered-SMS counter as /metrics shows it.
fn sms_undelivered(srv: &Server) -> f64 {
    let body = common::radmfa::http_get(srv.metrics_addr(), "/metrics").2;
    common::peers::prometheus_parse(&body)["radmfa_sms_undelivered_total{}"]
}

/// Twilio took the SMS but could not deliver it: with [callbacks], it was sent with a
/// StatusCallback, and Twilio's signed report of `undelivered` is logged (the user, the
/// masked number, the error code and what it means; never the code) and counted. Forged
/// reports, a report about another message, and one on a call's URL count nothing. The
/// prompt stays: a code that arrives late still signs in.
#[test]
fn an_undelivered_sms_is_logged_and_counted() {
    let slapd = directory();
    let standin = Standin::start();
    let metrics = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let srv = start(&slapd, &standin, "", metrics, &sms_client(""));

    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let sms = standin.sms()[0].clone();
    let url = sms
        .status_callback
        .clone()
        .expect("sent with a StatusCallback");
    assert!(
        url.starts_with("http://127.0.0.1:")
            && url.contains("/twilio/sms/")
            && url.ends_with("/status"),
        "{url}"
    );
    assert_eq!(sms_undelivered(&srv), 0.0, "exported from the start");

    // A status that is no failure: taken, nothing counted.
    assert_eq!(standin.report_sms(&sms, "delivered", None).status, 204);

    let undelivered = Standin::sms_status_params(&sms, "undelivered", Some("30003"));
    let forgeries = [
        ("no signature", Some(String::new())),
        ("garbage", Some("bm90LWEtc2lnbmF0dXJl".into())),
        (
            "wrong auth token",
            Some(common::provider_standin::twilio_signature(
                "guessed-token",
                &url,
                &undelivered,
            )),
        ),
    ];
    for (what, sig) in forgeries {
        let res = standin.post_callback(&url, undelivered.clone(), sig);
        assert_eq!(res.status, 403, "{what}: {res:?}");
    }
    // Signed, but about another message than this login's.
    let other = undelivered
        .iter()
        .map(|(k, v)| match k.as_str() {
            "MessageSid" | "SmsSid" => (k.clone(), "SM00000000000000000000000000000000".into()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    assert_eq!(standin.post_callback(&url, other, None).status, 403);
    // The SMS transaction on a call's URL is no call.
    let voice_url = url.replace("/twilio/sms/", "/twilio/voice/");
    assert_eq!(
        standin
            .post_callback(&voice_url, undelivered.clone(), None)
            .status,
        404
    );
    assert_eq!(
        sms_undelivered(&srv),
        0.0,
        "refused callbacks count nothing"
    );
    assert!(!srv.log().contains("SMS not delivered"), "{}", srv.log());

    // Twilio's genuine report.
    let res = standin.report_sms(&sms, "undelivered", Some("30003"));
    assert_eq!(res.status, 204, "{res:?}");
    assert!(srv.log_shows("SMS not delivered"), "{}", srv.log());
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("SMS not delivered"))
        .unwrap();
    for part in [
        "WARN",
        "user=\"alice\"",
        "****0100",
        "error_code=\"30003\"",
        "unreachable handset",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    assert!(
        !line.contains(DIRECTORY_MOBILE),
        "the number unmasked: {line}"
    );
    let code = sms.code();
    assert!(!reveals(&log, &code), "the SMS code is in the log");
    assert!(!log.contains(&sms.body), "the message body is in the log");
    assert_eq!(sms_undelivered(&srv), 1.0);

    // Nothing about the login changed: the code, arriving late, still signs in.
    let r2 = answer(&srv, "alice", &code, &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Accept", "{r2}");
}

/// Without [callbacks], the SMS goes out without a StatusCallback (Twilio would have nowhere
/// to report to).
#[test]
fn without_callbacks_an_sms_asks_for_no_status_report() {
    let slapd = directory();
    let standin = Standin::start();
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!(
        "\n[phone]\nsources = [\"store\", \"mobile\"]\n\n[sms]\nprovider = \"twilio\"\n{}{}",
        standin.twilio_toml(),
        sms_client("").concat()
    );
    let srv = Server::start(&o);
    let r1 = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let sent = standin.sms();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].status_callback, None, "{sent:?}");
}

/// A login's first text that cannot go out (the provider down; the day's cap, which
/// another account on the same number can use up) for a user with a token this client
/// takes: the app's prompt, after why, rather than a Reject that kept every such user out
/// while the provider was down, or till the next day (red team). The failed text is not
/// offered again in that login.
#[test]
fn a_first_text_not_sent_asks_a_token_holder_for_the_app_code() {
    let slapd = directory();
    let standin = Standin::start();
    for (limits, fail, why) in [
        (
            "",
            true,
            "The code could not be sent. Try again later or use another method.",
        ),
        (
            "max_per_user_per_day = 1\n",
            false,
            "Today's codes and calls are used up.",
        ),
    ] {
        let srv = start(
            &slapd,
            &standin,
            limits,
            "",
            &[client("vpn", "127.0.0.1", r#"methods = ["sms", "totp"]"#)],
        );
        let seed = srv.enroll("alice", &[]);
        standin.fail_sms(fail.then_some((503, 0, "Service Unavailable")));
        if !fail {
            // The day's one text, used up by a login that gets it.
            let r = login(&srv, "alice", ALICE_PW);
            assert_eq!(code_of(&r), "Access-Challenge", "{r}");
            assert!(message(&r).starts_with("Enter the code sent to"), "{r}");
        }
        let r = login(&srv, "alice", ALICE_PW);
        assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
        let said = message(&r);
        assert!(
            said.starts_with(why)
                && said.contains("Enter the code from your authenticator app or token")
                && !said.contains("sms"),
            "{said}"
        );
        // No text at that prompt (not offered after the provider failed; refused by the
        // day's cap): the same prompt again.
        let again = answer(&srv, "alice", "sms", &r["state"]);
        assert_eq!(code_of(&again), "Access-Challenge", "{again}");
        assert_eq!(again["state"], r["state"], "{again}");
        let accepted = answer(&srv, "alice", &totp(&seed, now(), &[]), &r["state"]);
        assert_eq!(code_of(&accepted), "Access-Accept", "{accepted}");
        let audit = srv.audit_json("alice");
        assert!(
            audit.iter().any(|row| row["reason"]
                .as_str()
                .is_some_and(|s| s.ends_with("; the app's code asked for instead"))),
            "{audit:#?}"
        );
        standin.fail_sms(None);
    }
}

/// A text the provider was slow to confirm (no answer within `[twilio] timeout_ms`, the
/// request sent) may still come: its prompt says so and takes its code when it does, and
/// so does a later prompt of the login. Refused or closed as failed, its late code was a
/// wrong code counted toward the lockout (red team).
#[test]
fn a_text_the_provider_did_not_confirm_finishes_the_login_when_it_comes() {
    let slapd = directory();
    let standin = Standin::start();
    // Six texts in the test: more than the default send limit.
    let srv = common::oob_env::start_tuned(
        &slapd,
        &standin,
        "max_per_user = 20\n",
        "\n[challenge]\nmax_attempts = 3\n",
        &[client("vpn", "127.0.0.1", r#"methods = ["sms", "totp"]"#)],
        "info",
        "duplicate_window_secs = 1",
    );
    srv.enroll("alice", &[]);
    standin.set_sms_delay(Duration::from_millis(3000));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}\n{}", srv.log());
    let said = message(&r);
    assert!(
        said.starts_with("The text to ****")
            && said.contains(" was not confirmed. If it comes, enter its code, or type ")
            && said.contains("app"),
        "{said}"
    );
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|s| s.starts_with("SMS not confirmed: ")
                && s.contains("no answer within 2000 ms")
                && s.ends_with("; waiting for its code, in case it was sent")),
        "{rec}"
    );
    // A wrong code: the prompt asked again still says the text was not confirmed.
    let wrong = answer(&srv, "alice", "000000", &r["state"]);
    let said = message(&wrong);
    assert!(
        said.starts_with("Wrong code.") && said.contains("was not confirmed. If it comes"),
        "{wrong}"
    );
    let late = standin.wait_sms(1, Duration::from_secs(5));
    let accepted = answer(&srv, "alice", &late[0].code(), &wrong["state"]);
    assert_eq!(
        code_of(&accepted),
        "Access-Accept",
        "{accepted}\n{}",
        srv.log()
    );

    // A copy of the request after the duplicate cache let it go (as to another node): told
    // as the first copy was, not that a code was sent, and no second text.
    let sock = srv.udp();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (pkt, _) = AccessRequestBuilder::new(41, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    let mut buf = [0u8; 4096];
    let mut prompts = Vec::new();
    for _ in 0..2 {
        sock.send(&pkt).unwrap();
        let n = sock.recv(&mut buf).expect("a reply");
        let reply = parse_reply(&buf[..n]).unwrap();
        assert_eq!(reply.code, 11, "{reply:?}");
        let said = reply.attributes.iter().find(|(t, _)| *t == 18).unwrap();
        prompts.push(String::from_utf8(said.1.clone()).unwrap());
        std::thread::sleep(Duration::from_millis(1_500));
    }
    assert!(
        prompts
            .iter()
            .all(|p| p.contains("was not confirmed. If it comes")),
        "{prompts:?}"
    );
    assert_eq!(
        standin.wait_sms(3, Duration::from_secs(3)).len(),
        2,
        "one text for the two copies"
    );

    // A text not confirmed, then the app's prompt, then another text not confirmed: the
    // first one's code, come late, still finishes the login at the last prompt.
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let app = answer(&srv, "alice", "app", &r["state"]);
    assert!(message(&app).contains("authenticator app"), "{app}");
    let again = answer(&srv, "alice", "sms", &app["state"]);
    assert_eq!(code_of(&again), "Access-Challenge", "{again}");
    assert!(message(&again).contains("was not confirmed"), "{again}");
    let texts = standin.wait_sms(4, Duration::from_secs(5));
    let accepted = answer(&srv, "alice", &texts[2].code(), &again["state"]);
    assert_eq!(
        code_of(&accepted),
        "Access-Accept",
        "{accepted}\n{}",
        srv.log()
    );

    // And at the app's prompt: the text, come late after the user typed "app", is its
    // code, not a wrong app code counted toward the lockout (review).
    let r = login(&srv, "alice", ALICE_PW);
    let app = answer(&srv, "alice", "app", &r["state"]);
    assert!(message(&app).contains("authenticator app"), "{app}");
    let texts = standin.wait_sms(5, Duration::from_secs(5));
    let accepted = answer(&srv, "alice", &texts[4].code(), &app["state"]);
    assert_eq!(
        code_of(&accepted),
        "Access-Accept",
        "{accepted}\n{}",
        srv.log()
    );
    assert_eq!(srv.audit_json("alice")[0]["mode"], "sms");

    // Not once a reload took texts off the client: the text's code at the app's prompt is
    // a wrong code there, as its own prompt is closed (review).
    let r = login(&srv, "alice", ALICE_PW);
    let app = answer(&srv, "alice", "app", &r["state"]);
    let texts = standin.wait_sms(6, Duration::from_secs(5));
    let text = std::fs::read_to_string(&srv.config).unwrap();
    let methods = r#"methods = ["sms", "totp"]"#;
    assert!(text.contains(methods), "{text}");
    std::fs::write(
        &srv.config,
        text.replacen(methods, r#"methods = ["totp"]"#, 1),
    )
    .unwrap();
    assert_eq!(srv.reload(1), 1);
    let refused = answer(&srv, "alice", &texts[5].code(), &app["state"]);
    assert!(message(&refused).starts_with("Wrong code."), "{refused}");

    // The wrong codes typed on purpose, and no other.
    let rows = srv.audit_json("alice");
    let wrong = |row: &&serde_json::Value| {
        row["reason"]
            .as_str()
            .is_some_and(|s| s.starts_with("wrong SMS code") || s.starts_with("wrong code"))
    };
    assert_eq!(rows.iter().filter(wrong).count(), 2, "{rows:#?}");
}

/// A text's code typed after it expired is told so at the app's prompt, uncounted, and the
/// prompt stays for the app's code: it was a wrong code toward the lockout (review).
#[test]
fn an_expired_text_code_at_the_app_prompt_is_told_so_and_not_counted() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "code_ttl_secs = 2\n",
        "\n[challenge]\nmax_attempts = 3\n",
        &[client("vpn", "127.0.0.1", r#"methods = ["sms", "totp"]"#)],
    );
    let seed = srv.enroll("alice", &[]);
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let code = standin.sms().last().unwrap().code();
    let app = answer(&srv, "alice", "app", &r["state"]);
    assert_eq!(code_of(&app), "Access-Challenge", "{app}");
    std::thread::sleep(Duration::from_millis(2_500));
    let late = answer(&srv, "alice", &code, &app["state"]);
    assert_eq!(code_of(&late), "Access-Challenge", "{late}");
    assert!(
        message(&late).starts_with(
            "That code has expired. 2 attempt(s) left. Enter the code from your authenticator app"
        ),
        "{late}"
    );
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|s| s.starts_with("SMS code expired (")),
        "{rec}"
    );
    let show = user_show(&srv, "alice");
    assert_eq!(show["failures"], 0, "{show}");
    let ok = answer(&srv, "alice", &totp(&seed, now(), &[]), &late["state"]);
    assert_eq!(code_of(&ok), "Access-Accept", "{ok}");
}

/// A token disabled while the user is at the app's prompt (after "app" at a text's): the
/// text's code still finishes the login there, as at its own prompt; the token's does not
/// (review: refused as "disabled" before the text was looked at).
#[test]
fn a_text_code_at_the_app_prompt_outlives_a_token_disabled_meanwhile() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &[client("vpn", "127.0.0.1", r#"methods = ["sms", "totp"]"#)],
    );
    srv.enroll("alice", &[]);
    let listed: serde_json::Value = serde_json::from_str(&cli_ok(
        &srv,
        &["token", "list", "--user", "alice", "--json"],
    ))
    .unwrap();
    let serial = listed[0]["serial"].as_str().unwrap().to_string();
    for (typed_text, expect) in [(true, "Access-Accept"), (false, "Access-Reject")] {
        if !typed_text {
            cli_ok(&srv, &["token", "enable", &serial]);
        }
        let r = login(&srv, "alice", ALICE_PW);
        assert!(message(&r).contains("Enter the code sent to"), "{r}");
        let code = standin.sms().last().unwrap().code();
        let app = answer(&srv, "alice", "app", &r["state"]);
        assert_eq!(code_of(&app), "Access-Challenge", "{app}");
        cli_ok(&srv, &["token", "disable", &serial]);
        let typed = if typed_text {
            code
        } else {
            "123456".to_string()
        };
        let r = answer(&srv, "alice", &typed, &app["state"]);
        assert_eq!(code_of(&r), expect, "{r}");
        // A wrong one is a wrong guess at the text, counted as at its own prompt; not a
        // free one for every prompt opened before the token went (review).
        let show = user_show(&srv, "alice");
        assert_eq!(show["failures"], u32::from(!typed_text), "{show}");
    }
}

/// Where the client fails open on an outage (`provider_failure = "allow"`), a text the
/// provider did not confirm in time is an outage as before, not a prompt: a hung provider
/// may send nothing at all. Its late code finishes nothing.
#[test]
fn a_text_not_confirmed_still_fails_open_where_the_client_allows() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(
        &slapd,
        &standin,
        "",
        "",
        &sms_client("provider_failure = \"allow\""),
    );
    standin.set_sms_delay(Duration::from_millis(3000));
    let r = login(&srv, "alice", ALICE_PW);
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["mode"] == "fail-open"
            && rec["reason"]
                .as_str()
                .is_some_and(|s| s.starts_with("SMS not confirmed: ")),
        "{rec}"
    );
}
