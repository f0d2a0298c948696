//! Phone-call approval and RD Gateway end to end: the real radmfa binary and slapd, pyrad,
//! radclient and raw UDP as the NAS, and the provider stand-in placing the "call" and
//! posting Twilio-signed callbacks to radmfa's callback listener.

mod common;

use std::time::{Duration, Instant};

use common::oob_env::{
    cli_ok, client, delivery, directory, directory_with_two_named_entry, rd_gateway_request,
    rd_gateway_request_for, start, start_tuned, ALICE_PW, BOB_PW, CALLER_ID, DIRECTORY_MOBILE,
};
use common::peers::{pyrad, radclient};
use common::provider_standin::{twilio_signature, Call, Script, Standin, AUTH_TOKEN};
use common::radmfa::{Options, Server, SECRET};
use common::slapd::LdapUser;
use radmfa::radius::client::{parse_reply, AccessRequestBuilder};

fn py(srv: &Server, args: &[&str]) -> serde_json::Value {
    pyrad(srv.port(), SECRET, args)
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

/// A VPN that holds the request during the call, for up to `budget` seconds.
fn hold_client(budget: u32) -> Vec<String> {
    vec![client(
        "vpn",
        "127.0.0.1",
        &format!("methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = {budget}"),
    )]
}

/// Alice's password login on `port`, held until her call decides (pyrad waits 25 s), for
/// a thread of its own while the test acts on the call.
fn alice_held_on(port: u16) -> serde_json::Value {
    pyrad(
        port,
        SECRET,
        &["--user", "alice", "--password", ALICE_PW, "--timeout", "25"],
    )
}

/// Waits (at most 10 s) until the stand-in has been asked to place a call.
fn wait_for_a_call(standin: &Standin) {
    let until = Instant::now() + Duration::from_secs(10);
    while standin.calls().is_empty() {
        assert!(Instant::now() < until, "no call placed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Password login held until the call decides; pyrad waits long enough.
fn held_login(srv: &Server, timeout: &str) -> (serde_json::Value, Duration) {
    let t = Instant::now();
    let r = py(
        srv,
        &[
            "--user",
            "alice",
            "--password",
            ALICE_PW,
            "--timeout",
            timeout,
        ],
    );
    (r, t.elapsed())
}

/// A call the provider refuses for the number (Twilio's 400 with 21215: the account may not
/// call that country; 21217: not a valid number) is not "try again later", which never
/// works: the user is told to have the helpdesk check that the number can be called, as
/// for a call that failed once placed, and the audit reason says what the code means. A
/// refusal of another kind still says to try again.
#[test]
fn a_call_the_provider_refuses_for_the_number_says_to_have_it_checked() {
    let slapd = directory();
    let standin = Standin::start();
    standin.fail_calls(Some((
        400,
        21215,
        "Account not authorized to call +15550100. Perhaps you need to enable some \
         international permissions",
    )));
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let (r, _) = held_login(&srv, "10");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(
        message(&r),
        "The call could not be placed: the phone number on record cannot be called. Ask \
         the helpdesk to check it.",
        "{r}"
    );
    let reason = srv.audit_json("alice")[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("call not placed")
            && reason.contains("21215")
            && reason.contains("geographic permissions"),
        "{reason}"
    );
    standin.fail_calls(Some((400, 21205, "Url or Twiml parameter is required.")));
    let (r, _) = held_login(&srv, "10");
    assert_eq!(
        message(&r),
        "The call could not be placed. Try again later.",
        "{r}"
    );
    assert!(standin.calls().is_empty());
}

#[test]
fn approved_call_accepts_with_one_call_to_the_users_phone() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(1500)),
    );
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let (r, took) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert!(
        took >= Duration::from_millis(1400),
        "accepted before the call: {took:?}"
    );
    let calls = standin.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].to, DIRECTORY_MOBILE);
    assert_eq!(calls[0].from, CALLER_ID, "configured caller ID");
    assert!(
        calls[0].twiml.contains("finishOnKey=\"#\"")
            && calls[0].twiml.contains("press zero, then pound"),
        "{}",
        calls[0].twiml
    );
    let cb = standin.callbacks();
    assert_eq!(cb[0].status, 200, "{cb:?}");
    assert!(cb[0].body.contains("approved"), "{cb:?}");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["mode"], "voice");
    assert_eq!(rec["result"], "accept");
    assert_eq!(rec["phone"], DIRECTORY_MOBILE);
    // Decided by the login: nothing is left for its call guard to close.
    assert!(!srv
        .log()
        .contains("login ended before the call was decided"));
    // The keypress posted again, as Twilio retries a request whose answer was lost: the
    // callee hears what the first answer said (before, that the sign-in had ended
    // without approval), and nothing more is decided.
    let again = standin.post_callback(
        &calls[0].gather_action(),
        Standin::gather_params(&calls[0], ""),
        None,
    );
    assert_eq!(again.status, 200, "{again:?}");
    assert!(
        again.body.contains("is approved") && !again.body.contains("without"),
        "{again:?}"
    );
    assert_eq!(srv.audit_json("alice").len(), 1);
}

#[test]
fn declined_unanswered_and_silent_calls_reject_within_the_budget() {
    let slapd = directory();
    let standin = Standin::start();
    // Seven calls to one user: above the default 5 sends per window.
    let srv = start(&slapd, &standin, "max_per_user = 10\n", "", &hold_client(6));
    // Pressed another key: declined.
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("1", Duration::from_millis(500)),
    );
    let (r, took) = held_login(&srv, "10");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Not answered: the provider reports no-answer.
    standin.script(
        DIRECTORY_MOBILE,
        Script::NoAnswer(Duration::from_millis(500)),
    );
    let (r, took) = held_login(&srv, "10");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(message(&r), "The call was not answered in time.", "{r}");
    // A busy line, and a number the call could not reach, are not "not answered in time":
    // that would send the user back to wait by a phone that never rings.
    for (status, said) in [
        ("busy", "line was busy"),
        ("failed", "could not be completed"),
    ] {
        standin.script(
            DIRECTORY_MOBILE,
            Script::Ends(status, Duration::from_millis(300)),
        );
        let (r, _) = held_login(&srv, "10");
        assert_eq!(code_of(&r), "Access-Reject", "{r}");
        assert!(message(&r).contains(said), "{status}: {r}");
    }
    // Answered, no key, hung up.
    standin.script(DIRECTORY_MOBILE, Script::HangUp(Duration::from_millis(500)));
    assert_eq!(code_of(&held_login(&srv, "10").0), "Access-Reject");
    // Answered, no key until the gather timed out: its empty result is not a "#".
    standin.script(
        DIRECTORY_MOBILE,
        Script::Silence(Duration::from_millis(500)),
    );
    let (r, took) = held_login(&srv, "10");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Nothing ever comes back: rejected, answered before the 6 s budget is over.
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let (r, took) = held_login(&srv, "10");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(standin.calls().len(), 7);
    let audit = srv.audit_json("alice");
    let reasons: Vec<&str> = audit
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons[0].contains("budget of 6 s"),
        "{reasons:?}\n{}",
        srv.log()
    );
    assert!(reasons[1].contains("no key pressed"), "{reasons:?}");
    assert!(reasons[2].contains("without approval"), "{reasons:?}");
    assert!(reasons[3].contains("call failed"), "{reasons:?}");
    assert!(reasons[4].contains("call busy"), "{reasons:?}");
    assert!(reasons[5].contains("no-answer"), "{reasons:?}");
    assert!(reasons[6].contains("declined"), "{reasons:?}");
}

/// The phone is lost and the number changed while a held login rings it: the key pressed
/// on the old phone approves nothing. `set-phone` cancels the pending call.
#[test]
fn changing_the_number_during_a_held_call_cancels_it() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let r = held_while(&srv, &standin, || {
        let out = cli_ok(&srv, &["user", "set-phone", "alice", "+15550199"]);
        assert!(
            out.contains("1 pending SMS code(s) or call(s) cancelled; 1 call(s) hung up"),
            "{out}"
        );
        // And the old phone stops ringing: the provider was asked to end that call.
        let call = standin.calls()[0].clone();
        assert_eq!(
            standin.ended_calls(),
            vec![(call.sid.clone(), "completed".to_string())]
        );
        // The # pressed on the old phone now, after the change: it approves nothing.
        let res = standin.post_callback(
            &call.gather_action(),
            Standin::gather_params(&call, ""),
            None,
        );
        assert_eq!(res.status, 200, "{res:?}");
    });
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let audit = srv.audit_json("alice");
    let login = audit.iter().find(|r| r["mode"] == "voice").unwrap();
    assert!(
        login["reason"]
            .as_str()
            .unwrap()
            .contains("the phone number was changed"),
        "{audit:#?}"
    );
    assert!(audit.iter().all(|r| r["result"] != "accept"), "{audit:#?}");
    assert_eq!(standin.calls().len(), 1);
}

/// The number changed while the call to the old one is still being placed (the provider
/// has not answered with its SID yet): the cancel finds no call to hang up, so it is hung
/// up once the SID comes. It rang on before.
#[test]
fn a_call_cancelled_while_it_is_placed_is_hung_up_when_placed() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    standin.set_call_delay(Duration::from_millis(1500));
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let r = held_while(&srv, &standin, || {
        let out = cli_ok(&srv, &["user", "set-phone", "alice", "+15550199"]);
        assert!(
            out.contains("1 pending SMS code(s) or call(s) cancelled"),
            "{out}"
        );
        assert!(standin.ended_calls().is_empty(), "no SID to hang up yet");
        let sid = standin.calls()[0].sid.clone();
        let t = Instant::now();
        while standin.ended_calls().is_empty() {
            assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(standin.ended_calls(), vec![(sid, "completed".to_string())]);
    });
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
}

/// A Calls API slower than `[twilio] timeout_ms` that places the call anyway, and the
/// callee presses `#` before it answers: the login follows the approval. It was refused as
/// "could not be placed" while the callee heard "approved", and a repeat of the same
/// request then got an Accept.
#[test]
fn a_call_approved_before_the_slow_calls_api_answers_lets_the_login_in() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(300)),
    );
    // The stand-in's twilio timeout_ms is 2000.
    standin.set_call_delay(Duration::from_millis(3000));
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let r = alice_held_on(srv.port());
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["result"], "accept", "{rec}");
    assert!(
        srv.log_shows("its callback has decided it already"),
        "{}",
        srv.log()
    );
    assert_eq!(standin.calls().len(), 1);
}

/// Runs `during` while alice's password login is held on its call (once the call is
/// placed); what the login got.
fn held_while(srv: &Server, standin: &Standin, during: impl FnOnce()) -> serde_json::Value {
    std::thread::scope(|s| {
        let port = srv.port();
        let login = s.spawn(move || alice_held_on(port));
        wait_for_a_call(standin);
        during();
        login.join().unwrap()
    })
}

/// SIGTERM while a held login waits for its call: a keypress within the shutdown grace
/// still approves it (the callback listener outlives the requests in flight), and a call
/// nobody answers ends within the grace with a Reject and its audit record, instead of
/// being cut off unanswered when the process exits. The keypress is posted once radmfa
/// says it is stopping, so the order is certain.
#[test]
fn a_held_call_at_shutdown_is_answered_and_audited_within_the_grace() {
    for (approve, expect, reason) in [
        (true, "Access-Accept", None),
        (
            false,
            "Access-Reject",
            Some("radmfa stopped before the call was answered"),
        ),
    ] {
        let slapd = directory();
        let standin = Standin::start();
        standin.script(DIRECTORY_MOBILE, Script::Silent);
        let mut srv = start(&slapd, &standin, "", "", &hold_client(20));
        let port = srv.port();
        let r = std::thread::scope(|s| {
            let login = s.spawn(move || alice_held_on(port));
            wait_for_a_call(&standin);
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &srv.pid().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
            assert!(
                srv.log_shows("shutting down: waiting for requests in flight"),
                "{}",
                srv.log()
            );
            if approve {
                let call = standin.calls()[0].clone();
                let res = standin.post_callback(
                    &call.gather_action(),
                    Standin::gather_params(&call, ""),
                    None,
                );
                assert_eq!(res.status, 200, "{res:?}\n{}", srv.log());
            }
            let status = srv.stop();
            assert!(status.success(), "{status:?}\n{}", srv.log());
            login.join().unwrap()
        });
        assert_eq!(code_of(&r), expect, "{r}\n{}", srv.log());
        let rec = &srv.audit_json("alice")[0];
        assert_eq!(rec["mode"], "voice", "{rec}");
        if let Some(reason) = reason {
            assert_eq!(rec["reason"], reason, "{rec}");
        }
        // A call the stop ended unanswered is hung up, not left ringing for a callee who
        // would hear that the sign-in already ended (or nothing, the process gone).
        let ended = standin.ended_calls();
        if approve {
            assert!(ended.is_empty(), "{ended:?}");
        } else {
            let sid = standin.calls()[0].sid.clone();
            assert_eq!(ended, [(sid, "completed".to_string())], "{}", srv.log());
        }
        assert!(
            !srv.log().contains("abandoning requests still in flight"),
            "{}",
            srv.log()
        );
    }
}

/// A client that holds logins for a call (20 s), and alice, enrolled, whose method is the
/// call: the directory, the provider's stand-in, the server and alice's TOTP seed.
fn alice_on_held_calls() -> (common::slapd::Slapd, Standin, Server, String) {
    alice_on_held_calls_with("")
}

fn alice_on_held_calls_with(extra: &str) -> (common::slapd::Slapd, Standin, Server, String) {
    let slapd = directory();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "voice_mode = \"hold\"\nvoice_budget_secs = 20",
    )];
    let srv = start(&slapd, &standin, "", extra, &clients);
    let seed = srv.enroll("alice", &[]);
    cli_ok(&srv, &["user", "set-method", "alice", "voice"]);
    (slapd, standin, srv, seed)
}

/// The fraud record names the login that placed the call (station, source address, the NAS's
/// own name), as that login's record does: with several calls in flight during a fatigue
/// attack, it named only the user and the client entry.
#[test]
fn fraud_report_rejects_and_blocks_until_unblock() {
    let (_slapd, standin, srv, seed) =
        alice_on_held_calls_with("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let fraud_reports = || {
        let body = common::radmfa::http_get(srv.metrics_addr(), "/metrics").2;
        common::peers::prometheus_parse(&body)["radmfa_fraud_reports_total{}"]
    };
    assert_eq!(fraud_reports(), 0.0);
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("0", Duration::from_millis(500)),
    );
    let r = py(
        &srv,
        &[
            "--user",
            "alice",
            "--password",
            ALICE_PW,
            "--timeout",
            "25",
            "--calling-station-id",
            "203.0.113.9",
            "--nas-identifier",
            "vpn-gw-2",
        ],
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(
        message(&r).contains("fraud"),
        "{r}\n{}\ncallbacks: {:?}",
        srv.log(),
        standin.callbacks()
    );
    let audit = srv.audit_json("alice");
    let fraud = audit
        .iter()
        .find(|r| r["result"] == "fraud" && r["mode"] == "voice")
        .unwrap_or_else(|| panic!("{audit:#?}"));
    let login = audit
        .iter()
        .find(|r| r["result"] == "reject")
        .unwrap_or_else(|| panic!("{audit:#?}"));
    assert_eq!(fraud["client_ip"], "203.0.113.9", "{fraud}");
    assert_eq!(fraud["nas_ip"], "127.0.0.1", "{fraud}");
    assert_eq!(fraud["nas_identifier"], "vpn-gw-2", "{fraud}");
    for field in ["client_ip", "nas_ip", "nas_identifier", "nas_name"] {
        assert_eq!(fraud[field], login[field], "{field}: {fraud}\n{login}");
    }
    assert_eq!(fraud_reports(), 1.0, "the fraud report counted once");

    // Blocked for every method: the TOTP route refuses too, without calling.
    cli_ok(&srv, &["user", "set-method", "alice", "totp"]);
    let r = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(message(&r).contains("blocked"), "{r}");
    assert_eq!(standin.calls().len(), 1);

    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert!(show["blocked_at"].is_i64(), "{show}");
    assert!(
        show["blocked_reason"].as_str().unwrap().contains("fraud"),
        "{show}"
    );
    // An app password given meanwhile says it waits behind the block, as a bypass does.
    let out = srv.cli(&["user", "app-password", "add", "alice"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && said.contains(
                "note: alice is blocked (a fraud report): every login of alice is refused"
            ),
        "{said}"
    );
    cli_ok(&srv, &["user", "app-password", "delete-all", "alice"]);
    let out = cli_ok(&srv, &["user", "unblock", "alice"]);
    assert!(out.contains("unblocked"), "{out}");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert!(show["blocked_at"].is_null(), "{show}");
    let r = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r), "Access-Challenge", "{r}");
    let code = common::peers::totp(&seed, common::peers::now(), &[]);
    let r = py(
        &srv,
        &[
            "--user",
            "alice",
            "--password",
            &code,
            "--state",
            r["state"].as_str().unwrap(),
        ],
    );
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
}

/// `fraud_digits = "9"` and no greeting: the call's TwiML tells the callee to press the keys
/// that do report fraud ("press nine", not the default's "press zero", which a callee would
/// follow into a plain decline), and pressing them does.
#[test]
fn without_a_greeting_the_call_speaks_the_configured_fraud_digits() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("9", Duration::from_millis(500)),
    );
    let sections = delivery(&standin, "");
    let voice = sections.replace("[voice]\n", "[voice]\nfraud_digits = \"9\"\n");
    assert_ne!(voice, sections);
    assert!(!voice.contains("greeting"), "{voice}");
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!("{voice}{}", hold_client(20).concat());
    let srv = Server::start(&o);
    let (r, _) = held_login(&srv, "25");
    let calls = standin.calls();
    assert_eq!(calls.len(), 1, "{r}");
    assert!(
        calls[0].twiml.contains("press nine, then pound") && !calls[0].twiml.contains("zero"),
        "{}",
        calls[0].twiml
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let audit = srv.audit_json("alice");
    assert!(
        audit
            .iter()
            .any(|r| r["result"] == "fraud" && r["mode"] == "voice"),
        "9# reported fraud: {audit:#?}"
    );
}

/// Two held logins at once (an attacker with the password starting several): the user
/// reports the first call as fraud, then presses # on the second. The report ends every
/// call in flight, so neither login gets in.
#[test]
fn a_fraud_report_ends_the_users_other_calls() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let port = srv.port();
    let results = {
        let logins: Vec<_> = (0..2)
            .map(|_| std::thread::spawn(move || alice_held_on(port)))
            .collect();
        let t = Instant::now();
        while standin.calls().len() < 2 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "two calls not placed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let calls = standin.calls();
        let fraud = standin.post_callback(
            &calls[0].gather_action(),
            Standin::gather_params(&calls[0], "0"),
            None,
        );
        assert_eq!(fraud.status, 200, "{fraud:?}");
        let approve = standin.post_callback(
            &calls[1].gather_action(),
            Standin::gather_params(&calls[1], ""),
            None,
        );
        assert_eq!(approve.status, 200, "{approve:?}");
        assert!(!approve.body.contains("is approved"), "{approve:?}");
        // The other call was hung up (not the reported one: the callee is on it, hearing
        // the outcome).
        let t = Instant::now();
        while standin.ended_calls().is_empty() {
            assert!(t.elapsed() < Duration::from_secs(5), "no hang-up");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            standin.ended_calls(),
            vec![(calls[1].sid.clone(), "completed".to_string())]
        );
        logins
            .into_iter()
            .map(|l| l.join().unwrap())
            .collect::<Vec<_>>()
    };
    for r in &results {
        assert_eq!(code_of(r), "Access-Reject", "{r}\n{}", srv.log());
    }
    assert_eq!(standin.calls().len(), 2);
}

/// Runs `sql` on `srv`'s SQLite store from another process, as an admin's `sqlite3` would.
fn sqlite(srv: &Server, sql: &str) {
    let out = std::process::Command::new(common::peers::python())
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); \
             c.commit()",
        ])
        .arg(srv.dir.path().join("radmfa.db"))
        .arg(sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A fraud report whose block cannot be written (the store refuses it on every try): the
/// login is still refused, the caller hears that the report was not recorded, and the log
/// says the user could NOT be blocked, so that an admin acts.
#[test]
fn a_fraud_report_whose_block_fails_still_refuses_and_says_so() {
    let (_slapd, standin, srv, _) = alice_on_held_calls();
    // A real SQLite refusal of every write that sets a block.
    for (name, when) in [("ins", "INSERT"), ("upd", "UPDATE OF blocked_at")] {
        sqlite(
            &srv,
            &format!(
                "CREATE TRIGGER refuse_block_{name} BEFORE {when} ON user_profile \
                 WHEN NEW.blocked_at IS NOT NULL \
                 BEGIN SELECT RAISE(ABORT, 'blocks refused by the test'); END"
            ),
        );
    }
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("0", Duration::from_millis(500)),
    );
    let (r, _) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    // The login is woken before the provider has the callback's answer: wait for it.
    let told = |c: &common::provider_standin::CallbackResult| {
        c.status == 200 && c.body.contains("could not be recorded")
    };
    let t = Instant::now();
    while !standin.callbacks().iter().any(told) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the caller was not told: {:#?}\n{}",
            standin.callbacks(),
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        srv.log_shows("the user could NOT be blocked"),
        "{}",
        srv.log()
    );
    assert_eq!(
        srv.log().matches("trying again").count(),
        3,
        "tried four times:\n{}",
        srv.log()
    );
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert!(show["blocked_at"].is_null(), "{show}");
    let audit = srv.audit_json("alice");
    assert!(
        audit.iter().any(|r| r["mode"] == "voice"
            && r["reason"]
                .as_str()
                .is_some_and(|t| t.contains("the block could not be written"))),
        "{audit:#?}"
    );
}

/// A held login as `user` rings; then `blocked` is blocked (as a fraud report on another
/// call leaves it) without this call being cancelled, the window a login that placed its
/// call just after the report's cancel falls into; then the callee presses #. The # must
/// not let the login in.
fn approval_after_a_block(slapd: &common::slapd::Slapd, user: &str, password: &str, blocked: &str) {
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let srv = start(slapd, &standin, "", "", &hold_client(20));
    let port = srv.port();
    let login = held_login_of(port, user, password);
    wait_for_a_call(&standin);
    block_from_another_call(&srv, blocked);
    let call = standin.calls()[0].clone();
    let res = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, ""),
        None,
    );
    assert_eq!(res.status, 200, "{res:?}");
    let r = login.join().unwrap();
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(message(&r).contains("blocked"), "{r}");
}

/// A fraud report lands while a login of the user is at the directory (its store reads
/// done, before the call): the login is refused as blocked and places no call. It rang the
/// phone seconds after the user had said it was not them.
#[test]
fn a_login_at_the_directory_when_the_user_is_blocked_places_no_call() {
    let reason = login_at_the_directory_while_blocked(&directory(), "alice", ALICE_PW, "alice");
    assert_eq!(reason, "user blocked: fraud alert from another call");
}

/// The same when the report blocked the entry's other name (the one its call was for): the
/// other names are read after the directory answers, and the blocked one stops the login
/// there, as a name holding the entry's second factor (the claim checks them again, for a
/// report landing between that read and the call).
#[test]
fn a_login_at_the_directory_when_the_entrys_other_name_is_blocked_places_no_call() {
    let slapd = directory_with_two_named_entry();
    let reason = login_at_the_directory_while_blocked(&slapd, "john.doe", "jdoe-Secret-pw", "jdoe");
    assert!(reason.contains("\"jdoe\""), "{reason}");
}

/// `user`'s password login on `port`, on a thread of its own, held until its call decides
/// (pyrad waits 25 s).
fn held_login_of(
    port: u16,
    user: &str,
    password: &str,
) -> std::thread::JoinHandle<serde_json::Value> {
    let args: Vec<String> = ["--user", user, "--password", password, "--timeout", "25"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pyrad(port, SECRET, &args)
    })
}

/// Blocks `blocked` in `srv`'s store as a fraud report on another call does, from another
/// process's connection.
fn block_from_another_call(srv: &Server, blocked: &str) {
    let config = radmfa::config::Config::load(&srv.config).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = radmfa::app::open_store(&config.store).await.unwrap();
        store
            .block_user(blocked, 1_800_000_000, "fraud alert from another call")
            .await
            .unwrap();
        store.close().await;
    });
}

/// `user` logs in with slapd stopped; `blocked` is blocked meanwhile; slapd goes on. The
/// login must be refused as blocked with no call placed; its audit reason.
fn login_at_the_directory_while_blocked(
    slapd: &common::slapd::Slapd,
    user: &str,
    password: &str,
    blocked: &str,
) -> String {
    let standin = Standin::start();
    let srv = start(slapd, &standin, "", "", &hold_client(20));
    slapd.signal("-STOP");
    let port = srv.port();
    let login = held_login_of(port, user, password);
    slapd.wait_for_unread_request();
    block_from_another_call(&srv, blocked);
    slapd.signal("-CONT");
    let r = login.join().unwrap();
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(standin.calls().is_empty(), "{:?}", standin.calls());
    srv.audit_json(user)[0]["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `user delete` while the user's call rings (a leaver's password in someone else's hands):
/// the login is refused, and the 0# pressed on the still-ringing phone blocks the name.
/// The call's row was deleted with the user: the report found nothing and blocked no one,
/// and with no factor left the password alone could let the caller in.
#[test]
fn a_fraud_report_on_a_call_ringing_when_the_user_was_deleted_blocks_the_name() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let port = srv.port();
    let login = std::thread::spawn(move || alice_held_on(port));
    wait_for_a_call(&standin);
    cli_ok(&srv, &["user", "delete", "alice"]);
    let r = login.join().unwrap();
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let call = standin.calls()[0].clone();
    let res = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, "0"),
        None,
    );
    assert_eq!(res.status, 200, "{res:?}\n{}", srv.log());
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert!(
        show["blocked_reason"]
            .as_str()
            .is_some_and(|r| r.contains("fraud")),
        "{show}\n{}",
        srv.log()
    );
}

#[test]
fn an_approval_after_the_user_was_blocked_does_not_accept() {
    approval_after_a_block(&directory(), "alice", ALICE_PW, "alice");
}

/// The same under another name of the entry: jdoe is blocked while john.doe's call rings.
#[test]
fn an_approval_after_the_entrys_other_name_was_blocked_does_not_accept() {
    let slapd = directory_with_two_named_entry();
    approval_after_a_block(&slapd, "john.doe", "jdoe-Secret-pw", "jdoe");
}

/// A fraud report that comes after the held login gave up on the call (its budget ran out
/// while the phone rang on) still blocks the user: someone else has the password.
#[test]
fn a_fraud_report_after_the_budget_ran_out_still_blocks() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &hold_client(3));
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("0", Duration::from_millis(4500)),
    );
    let (r, took) = held_login(&srv, "10");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let t = Instant::now();
    while standin.callbacks().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "no key pressed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cb = standin.callbacks();
    assert_eq!(cb[0].status, 200, "{cb:?}");
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "alice", "--json"])).unwrap();
    assert!(
        show["blocked_reason"]
            .as_str()
            .is_some_and(|r| r.contains("fraud")),
        "{show}"
    );
    let audit = srv.audit_json("alice");
    assert_eq!(
        audit.iter().filter(|r| r["result"] == "fraud").count(),
        1,
        "{audit:#?}"
    );
    // The admin unblocks; the same signed report sent again (a provider retry, or a copy
    // from a proxy's log) does not block the user a second time.
    cli_ok(&srv, &["user", "unblock", "alice"]);
    let call = standin.calls()[0].clone();
    let res = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, "0"),
        None,
    );
    assert_eq!(res.status, 200, "{res:?}");
    // Unblocked, alice has no second-factor state left to show; blocked, she would.
    let out = srv.cli(&["user", "show", "alice", "--json"]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !shown.contains("fraud"),
        "blocked again by a replay: {shown}"
    );
    assert_eq!(
        srv.audit_json("alice")
            .iter()
            .filter(|r| r["result"] == "fraud")
            .count(),
        1
    );
}

/// `#` pressed after the held login gave up (its budget ran out while the phone rang):
/// the login was rejected, so the callee must not hear that it is approved, and the call
/// stays as decided.
#[test]
fn an_approval_after_the_budget_ran_out_is_not_announced_as_one() {
    let slapd = directory();
    let standin = Standin::start();
    let srv = start(&slapd, &standin, "", "", &hold_client(3));
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(4500)),
    );
    let (r, _) = held_login(&srv, "10");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let t = Instant::now();
    while standin.callbacks().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "no key pressed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cb = &standin.callbacks()[0];
    assert_eq!(cb.status, 200, "{cb:?}");
    assert!(cb.body.contains("already ended"), "{cb:?}");
    assert!(!cb.body.contains("is approved"), "{cb:?}");
    assert!(
        srv.log_shows("call answered after it was decided"),
        "{}",
        srv.log()
    );
}

/// `#` pressed on a call whose login was refused on a store error after the call went out,
/// before the login decided the call: the callee must not hear that the sign-in is
/// approved (it was left pending, and the # was taken), but that it ended.
fn pressed_after_the_login_failed(srv: &Server, standin: &Standin) {
    let call = standin.calls()[0].clone();
    let res = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, ""),
        None,
    );
    assert_eq!(res.status, 200, "{res:?}\n{}", srv.log());
    assert!(!res.body.contains("is approved"), "{res:?}\n{}", srv.log());
    assert!(res.body.contains("already ended"), "{res:?}\n{}", srv.log());
    assert!(
        srv.log_shows("login ended before the call was decided"),
        "{}",
        srv.log()
    );
}

/// radmfa holding calls that the stand-in leaves silent, with a store that refuses every
/// call's reference: a held login fails after its call went out.
fn held_calls_whose_reference_is_refused() -> (common::slapd::Slapd, Standin, Server) {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    sqlite(
        &srv,
        "CREATE TRIGGER refuse_ref BEFORE UPDATE OF provider_ref ON oob_transactions \
         BEGIN SELECT RAISE(ABORT, 'call references refused by the test'); END",
    );
    (slapd, standin, srv)
}

/// A held login whose call goes out but whose store then refuses the call's reference.
#[test]
fn an_approval_after_a_held_login_failed_is_not_announced_as_one() {
    let (_slapd, standin, srv) = held_calls_whose_reference_is_refused();
    let (r, _) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert_eq!(standin.calls().len(), 1);
    pressed_after_the_login_failed(&srv, &standin);
}

/// A held login that fails after its call went out, with the store refusing to close the
/// call as well: the call guard cannot mark it failed, so it hangs the call up, and a #
/// pressed on it cannot be heard as an approval (the callee is gone).
#[test]
fn a_call_the_store_cannot_close_after_its_login_failed_is_hung_up() {
    let (_slapd, standin, srv) = held_calls_whose_reference_is_refused();
    sqlite(
        &srv,
        "CREATE TRIGGER refuse_close BEFORE UPDATE OF status ON oob_transactions \
         BEGIN SELECT RAISE(ABORT, 'closing calls refused by the test'); END",
    );
    let (r, _) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let calls = standin.calls();
    assert_eq!(calls.len(), 1);
    let until = Instant::now() + Duration::from_secs(10);
    while standin.ended_calls().is_empty() {
        assert!(Instant::now() < until, "not hung up:\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        standin.ended_calls().len(),
        1,
        "{:?}",
        standin.ended_calls()
    );
    assert!(
        srv.log_shows("login ended before the call was decided, and it could not be closed"),
        "{}",
        srv.log()
    );
}

/// The same for a call's prompt (challenge mode) whose challenge the store refuses.
#[test]
fn an_approval_after_a_calls_prompt_failed_is_not_announced_as_one() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let clients = [client("vpn", "127.0.0.1", "methods = [\"voice\"]")];
    let srv = start(&slapd, &standin, "", "", &clients);
    sqlite(
        &srv,
        "CREATE TRIGGER refuse_challenge BEFORE INSERT ON challenges \
         BEGIN SELECT RAISE(ABORT, 'challenges refused by the test'); END",
    );
    let r = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert_eq!(standin.calls().len(), 1);
    pressed_after_the_login_failed(&srv, &standin);
}

#[test]
fn retransmits_during_a_held_call_get_one_call_and_the_same_reply() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(3000)),
    );
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let sock = srv.udp();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (pkt, auth) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    // The NAS retransmits every second while the phone rings.
    let mut sent = 0;
    let mut replies = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(8);
    while replies.is_empty() && Instant::now() < end {
        sock.send(&pkt).unwrap();
        sent += 1;
        let tick = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tick {
            if let Ok(n) = sock.recv(&mut buf) {
                replies.push(buf[..n].to_vec());
            }
        }
    }
    // Collect the rest, then one retransmit after the answer (served from the cache).
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(n) = sock.recv(&mut buf) {
        replies.push(buf[..n].to_vec());
    }
    sock.send(&pkt).unwrap();
    sent += 1;
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let n = sock.recv(&mut buf).expect("cached reply");
    replies.push(buf[..n].to_vec());
    assert!(
        sent >= 4,
        "the call took a few retransmit intervals ({sent})"
    );
    // One reply for the copies that came while the call rang (as FreeRADIUS answers; see
    // `resends_during_a_held_call_get_one_reply`), and the cached one after it.
    assert_eq!(
        replies.len(),
        2,
        "one reply in flight, one cached ({sent} sent)"
    );
    assert!(
        replies.windows(2).all(|w| w[0] == w[1]),
        "identical replies"
    );
    radmfa::radius::crypto::verify_reply(&replies[0], &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(parse_reply(&replies[0]).unwrap().code, 2, "Access-Accept");
    assert_eq!(standin.calls().len(), 1, "one call for one request");
    assert_eq!(srv.audit_json("alice").len(), 1, "one audit record");
}

/// `request` (one 16-octet User-Password block, Message-Authenticator first) as if its NAS
/// had drawn `auth` for its Request Authenticator.
fn with_authenticator(request: &[u8], auth: [u8; 16]) -> Vec<u8> {
    use md5::{Digest, Md5};
    let key = |a: &[u8]| Md5::new().chain_update(SECRET).chain_update(a).finalize();
    let mut p = request.to_vec();
    let (old, new) = (key(&p[4..20]), key(&auth));
    let mut at = 20;
    while at < p.len() {
        let (typ, len) = (p[at], p[at + 1] as usize);
        if typ == 2 {
            assert_eq!(len, 18, "one password block");
            for i in 0..16 {
                p[at + 2 + i] ^= old[i] ^ new[i];
            }
        }
        at += len;
    }
    p[4..20].copy_from_slice(&auth);
    assert_eq!(p[20], 80, "Message-Authenticator first");
    p[22..38].fill(0);
    let ma = radmfa::radius::crypto::message_authenticator(&p, SECRET.as_bytes());
    p[22..38].copy_from_slice(&ma);
    p
}

/// A held call's transaction is found again by its request's key (NAS, source,
/// Identifier, Request Authenticator), so that retransmits reaching any node share it.
/// Another user's request under the same key (a NAS reusing an authenticator, or one sent
/// after the duplicate window) must not ride on the approval of someone else's phone.
/// A held-call client with a `budget`-second call and a 1 s duplicate window, a call that is
/// approved, and alice's approved request: the server, the stand-in, a socket that sent it,
/// the request and its Request Authenticator.
fn alice_approved_on_a_held_call(
    slapd: &common::slapd::Slapd,
    budget: u32,
) -> (Server, Standin, std::net::UdpSocket, Vec<u8>, [u8; 16]) {
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(300)),
    );
    let srv = start_tuned(
        slapd,
        &standin,
        "",
        "",
        &hold_client(budget),
        "info",
        "duplicate_window_secs = 1",
    );
    let sock = srv.udp();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (alice, auth) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send(&alice).unwrap();
    let n = sock.recv(&mut buf).expect("alice's reply");
    assert_eq!(parse_reply(&buf[..n]).unwrap().code, 2, "alice approved");
    (srv, standin, sock, alice, auth)
}

/// A NAS (pam_radius_auth with `retry=`) that resends the request twice while its call
/// rings gets one reply, as FreeRADIUS gives: a copy per resend reached pam_radius after it
/// had read the first and sent its next round, and it gave up on that stale copy, while
/// radmfa audited the Accept.
#[test]
fn resends_during_a_held_call_get_one_reply() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(1500)),
    );
    let srv = start(&slapd, &standin, "", "", &hold_client(20));
    let sock = srv.udp();
    sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (alice, _) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send(&alice).unwrap();
    wait_for_a_call(&standin);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        sock.send(&alice).unwrap();
    }
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("the reply");
    assert_eq!(parse_reply(&buf[..n]).unwrap().code, 2, "{}", srv.log());
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    assert!(sock.recv(&mut buf).is_err(), "a second copy of the reply");
    // A resend after the reply gets the cached one.
    sock.send(&alice).unwrap();
    let m = sock.recv(&mut buf).expect("the cached reply");
    assert_eq!(parse_reply(&buf[..m]).unwrap().code, 2);
    assert_eq!(standin.calls().len(), 1);
}

#[test]
fn another_users_request_under_the_same_key_gets_no_share_of_the_call() {
    let slapd = directory();
    let (srv, standin, sock, _, auth) = alice_approved_on_a_held_call(&slapd, 20);
    let mut buf = [0u8; 4096];
    // Past the duplicate window: the same key no longer meets the cached reply.
    std::thread::sleep(Duration::from_millis(1600));
    let (bob, _) = AccessRequestBuilder::new(9, "bob")
        .password(BOB_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send(&with_authenticator(&bob, auth)).unwrap();
    let n = sock.recv(&mut buf).expect("bob's reply");
    radmfa::radius::crypto::verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(
        parse_reply(&buf[..n]).unwrap().code,
        3,
        "bob: Access-Reject"
    );
    assert_eq!(standin.calls().len(), 1, "no call placed on bob's behalf");
    let bobs = srv.audit_json("bob");
    assert_eq!(bobs[0]["result"], "reject", "{bobs:?}");
}

/// The same request sent again later than any copy of it could come (its deadline and the
/// duplicate window are over: a replay, or a NAS reusing an authenticator for a new login)
/// does not ride on the approval of the first: no Accept without a call answered for it.
#[test]
fn the_same_request_long_after_its_call_is_not_accepted_on_it() {
    let slapd = directory();
    // Request deadline 4 s (the harness's; the 3 s budget is shorter), duplicate window 1 s.
    let (srv, standin, sock, alice, auth) = alice_approved_on_a_held_call(&slapd, 3);
    let mut buf = [0u8; 4096];
    std::thread::sleep(Duration::from_millis(7500));
    sock.send(&alice).unwrap();
    let n = sock.recv(&mut buf).expect("the second reply");
    radmfa::radius::crypto::verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(
        parse_reply(&buf[..n]).unwrap().code,
        3,
        "the old approval was lent: {}",
        srv.log()
    );
    assert_eq!(standin.calls().len(), 1);
}

/// A copy of an approved request that comes after the duplicate window (its Accept lost on
/// the way, the NAS trying again) gets the Accept again, from the call's decision: no second
/// call, and an audit record that says it repeats the login, not a second approved login.
#[test]
fn a_copy_of_an_approved_request_after_the_duplicate_window_is_audited_as_a_repeat() {
    let slapd = directory();
    let (srv, standin, sock, alice, auth) = alice_approved_on_a_held_call(&slapd, 20);
    let mut buf = [0u8; 4096];
    // Past the duplicate window (1 s), well within the request's deadline.
    std::thread::sleep(Duration::from_millis(1600));
    sock.send(&alice).unwrap();
    let n = sock.recv(&mut buf).expect("the copy's reply");
    radmfa::radius::crypto::verify_reply(&buf[..n], &auth, SECRET.as_bytes()).unwrap();
    assert_eq!(parse_reply(&buf[..n]).unwrap().code, 2, "{}", srv.log());
    assert_eq!(standin.calls().len(), 1, "no second call");
    let recs = srv.audit_json("alice");
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[1]["result"], "accept", "{recs:?}");
    assert!(recs[1]["reason"].is_null(), "{recs:?}");
    assert_eq!(recs[0]["result"], "accept", "{recs:?}");
    assert_eq!(
        recs[0]["reason"], "repeat of a decided request: approved on the call",
        "{recs:?}"
    );
}

/// Sends `pkt` from `sock` to `to` and returns the reply's bytes (within 10 s).
fn exchange(sock: &std::net::UdpSocket, to: std::net::SocketAddr, pkt: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    sock.send_to(pkt, to).unwrap();
    let (n, _) = sock.recv_from(&mut buf).expect("a reply");
    buf[..n].to_vec()
}

/// The Reply-Message of a reply.
fn reply_message(reply: &[u8]) -> String {
    parse_reply(reply)
        .unwrap()
        .attributes
        .iter()
        .filter(|(typ, _)| *typ == 18)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// A copy of a request whose call ended busy, after the duplicate window, is told the line
/// was busy as the first copy was, byte for byte: not that the call "could not be placed"
/// (it was), and it is audited as a repeat of the login.
#[test]
fn a_copy_of_a_request_whose_call_was_busy_gets_the_same_reject() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Ends("busy", Duration::from_millis(300)),
    );
    let srv = start_tuned(
        &slapd,
        &standin,
        "",
        "",
        &hold_client(20),
        "info",
        "duplicate_window_secs = 1",
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (alice, _) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    let first = exchange(&sock, srv.addr, &alice);
    assert_eq!(
        reply_message(&first),
        "The line was busy. Try again when the phone is free.",
        "{}",
        srv.log()
    );
    std::thread::sleep(Duration::from_millis(1600));
    let again = exchange(&sock, srv.addr, &alice);
    assert_eq!(reply_message(&again), reply_message(&first));
    assert_eq!(again, first, "the same reply");
    assert_eq!(standin.calls().len(), 1, "no second call");
    let recs = srv.audit_json("alice");
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[1]["reason"], "call busy", "{recs:?}");
    assert_eq!(recs[0]["result"], "reject", "{recs:?}");
    assert_eq!(
        recs[0]["reason"], "repeat of a decided request: call busy",
        "{recs:?}"
    );
}

/// radmfa stopped during a held call and started again: the NAS's copy of the request,
/// sent to the new process, is told what the first copy was (the sign-in was interrupted),
/// not that the call could not be placed, and is audited as a repeat.
#[test]
fn a_copy_of_a_request_held_when_radmfa_stopped_gets_the_same_reject_after_a_restart() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let mut srv = start(&slapd, &standin, "", "", &hold_client(20));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (alice, _) = AccessRequestBuilder::new(9, "alice")
        .password(ALICE_PW.as_bytes())
        .build(SECRET.as_bytes());
    sock.send_to(&alice, srv.addr).unwrap();
    wait_for_a_call(&standin);
    assert!(srv.stop().success(), "{}", srv.log());
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("the held request's reply");
    let first = buf[..n].to_vec();
    assert_eq!(
        reply_message(&first),
        "The sign-in was interrupted. Please try again."
    );
    srv.restart();
    let again = exchange(&sock, srv.addr, &alice);
    assert_eq!(
        reply_message(&again),
        reply_message(&first),
        "{}",
        srv.log()
    );
    assert_eq!(again, first, "the same reply");
    assert_eq!(standin.calls().len(), 1, "no second call");
    let recs = srv.audit_json("alice");
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(
        recs[0]["reason"],
        "repeat of a decided request: radmfa stopped before the call was answered",
        "{recs:?}"
    );
}

/// Held calls keep their requests' slots: with max_in_flight = 2 and two phones ringing, a
/// third request is dropped as overloaded, and the drop's line names the client it came
/// from (the address alone, with `nas=""`, read as a stranger's).
#[test]
fn a_request_dropped_while_held_calls_fill_the_slots_names_its_client() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let srv = start_tuned(
        &slapd,
        &standin,
        "",
        "",
        &hold_client(3),
        "info",
        "max_in_flight = 2",
    );
    std::thread::scope(|s| {
        let port = srv.port();
        let held: Vec<_> = (0..2)
            .map(|_| s.spawn(move || alice_held_on(port)))
            .collect();
        let until = Instant::now() + Duration::from_secs(10);
        while standin.calls().len() < 2 {
            assert!(Instant::now() < until, "two calls: {}", srv.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        let sock = srv.udp();
        let (bob, _) = AccessRequestBuilder::new(7, "bob")
            .password(BOB_PW.as_bytes())
            .build(SECRET.as_bytes());
        sock.send(&bob).unwrap();
        assert!(
            srv.log_shows("kind=Overloaded src=127.0.0.1 nas=\"vpn\""),
            "{}",
            srv.log()
        );
        for h in held {
            assert_eq!(code_of(&h.join().unwrap()), "Access-Reject");
        }
    });
}

#[test]
fn challenge_then_enter_with_radclient() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(500)),
    );
    let clients = [client("vpn", "127.0.0.1", "methods = [\"voice\"]")];
    let srv = start(&slapd, &standin, "", "", &clients);
    let host = srv.addr.to_string();
    let r1 = radclient(
        &host,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"{ALICE_PW}\", Message-Authenticator = 0x00"
        ),
    );
    assert_eq!(r1.code, "Access-Challenge", "{}", r1.output);
    assert!(
        // Ending ": " as the code prompts do: pam_radius_auth and SSH show it as it is.
        r1.output.contains("Answer the call, then press Enter: "),
        "{}",
        r1.output
    );
    let state = r1.state.expect("State");
    std::thread::sleep(Duration::from_millis(1500));
    let r2 = radclient(
        &host,
        SECRET,
        &format!("User-Name = \"alice\", User-Password = \"\", State = {state}, Message-Authenticator = 0x00"),
    );
    assert_eq!(r2.code, "Access-Accept", "{}", r2.output);
    assert_eq!(standin.calls().len(), 1);
    // Enter again on the used State: refused.
    let r3 = radclient(
        &host,
        SECRET,
        &format!("User-Name = \"alice\", User-Password = \"x\", State = {state}, Message-Authenticator = 0x00"),
    );
    assert_eq!(r3.code, "Access-Reject", "{}", r3.output);
    // The prompt was issued: nothing is left for its call guard to close.
    assert!(!srv
        .log()
        .contains("login ended before the call was decided"));
}

/// alice's answer `text` at the prompt whose reply carried `state`.
fn answer_as_alice(srv: &Server, text: &str, state: &serde_json::Value) -> serde_json::Value {
    py(
        srv,
        &[
            "--user",
            "alice",
            "--password",
            text,
            "--state",
            state.as_str().unwrap(),
        ],
    )
}

/// Password, "call", then "app" at the call's prompt: the request that carried "app"
/// checked no password, and its audit record says the app was chosen (it said "password
/// ok; waiting for code", with the call's phone in a TOTP row). A # pressed later on the
/// call left ringing is told another way was chosen, and the code finishes the login.
#[test]
fn choosing_the_app_at_the_calls_prompt_is_audited_as_such() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "methods = [\"totp\", \"voice\"]\nvoice_mode = \"challenge\"",
    )];
    let srv = start(&slapd, &standin, "", "", &clients);
    let seed = srv.enroll("alice", &[]);
    let answer = |text: &str, state: &serde_json::Value| answer_as_alice(&srv, text, state);
    let r1 = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}\n{}", srv.log());
    let r2 = answer("call", &r1["state"]);
    assert!(
        message(&r2).contains("Answer the call"),
        "{r2}\n{}",
        srv.log()
    );
    wait_for_a_call(&standin);
    let call = standin.calls()[0].clone();
    // Enter before the call is answered: asked again, with the way out still offered.
    let again = answer("", &r2["state"]);
    assert!(
        message(&again).contains("not answered yet") && message(&again).contains("or type app"),
        "{again}"
    );
    let r3 = answer("app", &again["state"]);
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}\n{}", srv.log());
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(rec["result"], "challenge", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the app chosen at the prompt")),
        "{rec}"
    );
    assert!(rec["phone"].is_null(), "{rec}");
    let pressed = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, ""),
        None,
    );
    assert!(
        pressed.body.contains("another way to sign in was chosen"),
        "{pressed:?}"
    );
    let code = common::peers::totp(&seed, common::peers::now(), &[]);
    let r4 = answer(&code, &r3["state"]);
    assert_eq!(code_of(&r4), "Access-Accept", "{r4}\n{}", srv.log());
}

/// Typing "sms" at the call's prompt fails the call: a # pressed on it approves nothing and
/// the callee hears that another way to sign in was chosen (it heard "approved" before,
/// for a login no longer waiting, and then "ended without approval, please sign in
/// again", to a user who went on to sign in by SMS). The call is not hung up: its owner can still report fraud on it, which
/// someone with the password who switched away at once must not be able to silence. The
/// SMS code finishes the login.
#[test]
fn choosing_sms_at_the_calls_prompt_fails_the_call_but_leaves_the_fraud_report() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let clients = [client("vpn", "127.0.0.1", "methods = [\"voice\", \"sms\"]")];
    let srv = start(&slapd, &standin, "", "", &clients);
    let r1 = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}\n{}", srv.log());
    assert!(message(&r1).contains("Answer the call"), "{r1}");
    wait_for_a_call(&standin);
    let call = standin.calls()[0].clone();
    let answer = |text: &str, state: &serde_json::Value| answer_as_alice(&srv, text, state);
    let r2 = answer("sms", &r1["state"]);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}\n{}", srv.log());
    let pressed = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, ""),
        None,
    );
    assert_eq!(pressed.status, 200, "{pressed:?}");
    assert!(
        pressed
            .body
            .contains("no longer needed: another way to sign in was chosen")
            && !pressed.body.contains("sign in again"),
        "{pressed:?}"
    );
    let code = standin.wait_sms(1, Duration::from_secs(5))[0].code();
    let r3 = answer(&code, &r2["state"]);
    assert_eq!(code_of(&r3), "Access-Accept", "{r3}\n{}", srv.log());
    assert!(standin.ended_calls().is_empty(), "the call was hung up");
    // Its owner did not start this: 0# on the call left ringing still blocks the user.
    let fraud = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, "0"),
        None,
    );
    assert_eq!(fraud.status, 200, "{fraud:?}");
    let r4 = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r4), "Access-Reject", "{r4}");
    let audit = srv.audit_json("alice");
    assert!(audit.iter().any(|r| r["result"] == "fraud"), "{audit:#?}");
}

/// An approved call is a passed second factor: it forgets the wrong answers before it, as a
/// right SMS or app code does. Before, a user who mistyped an SMS code and then finished by
/// phone kept the count, and the next typo, days later, locked the second factor.
#[test]
fn an_approved_call_forgets_earlier_wrong_answers() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(300)),
    );
    let clients = [client("vpn", "127.0.0.1", "methods = [\"sms\", \"voice\"]")];
    let extra = "[lockout]\nthreshold = 3\n[challenge]\nmax_attempts = 3\n";
    let srv = start(&slapd, &standin, "", extra, &clients);
    let failures = || -> u64 {
        let out = srv.cli(&["user", "show", "alice", "--json"]);
        if String::from_utf8_lossy(&out.stderr).contains("no second-factor state") {
            return 0; // nothing counted, nothing stored
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        v["failures"].as_u64().unwrap()
    };
    let r1 = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(
        code_of(&r1),
        "Access-Challenge",
        "{r1}\n{}\n{:?}",
        srv.log(),
        srv.audit_json("alice")
    );
    let state = r1["state"].as_str().unwrap().to_string();
    let sent = standin.wait_sms(1, Duration::from_secs(5))[0].code();
    let wrong = if sent == "000000" { "111111" } else { "000000" };
    let answer = |text: &str, state: &str| {
        py(
            &srv,
            &["--user", "alice", "--password", text, "--state", state],
        )
    };
    let r2 = answer(wrong, &state);
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}");
    assert_eq!(failures(), 1);
    let r3 = answer("call", r2["state"].as_str().unwrap());
    assert_eq!(code_of(&r3), "Access-Challenge", "{r3}\n{}", srv.log());
    assert!(message(&r3).contains("Answer the call"), "{r3}");
    std::thread::sleep(Duration::from_millis(1500));
    let r4 = answer("", r3["state"].as_str().unwrap());
    assert_eq!(code_of(&r4), "Access-Accept", "{r4}\n{}", srv.log());
    assert_eq!(
        failures(),
        0,
        "the approved call left the wrong answer counted"
    );
}

#[test]
fn rd_gateway_request_calls_without_an_ldap_bind() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(1000)),
    );
    let clients = [
        client(
            "rd-gateway",
            "127.0.0.1",
            "second_factor_only = true\nmethods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 30",
        ),
        client("vpn", "127.0.0.2", ""),
    ];
    let srv = start(&slapd, &standin, "", "", &clients);
    let dn = LdapUser::new("alice", "").dn();
    let binds = slapd.bind_count(&dn);
    // RD Gateway's NPS shape: no User-Password, NAS-Port-Type Virtual, UserAuthType:PW.
    let rdg = |bind: &str| rd_gateway_request(&srv, bind);
    let r = rdg("127.0.0.1");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(standin.calls().len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(slapd.bind_count(&dn), binds, "no LDAP bind for the user");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(
        (rec["mode"].as_str(), rec["nas_name"].as_str()),
        (Some("voice"), Some("rd-gateway"))
    );
    // Which credential the gateway checked is in the record.
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|r| r.contains("RD Gateway logon by password")),
        "{rec}"
    );

    // A password login (a VPN policy NPS forwards from the same address) gets no call: this
    // client checks no password, so it takes none.
    let r = py(
        &srv,
        &["--user", "alice", "--password", ALICE_PW, "--timeout", "10"],
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(standin.calls().len(), 1, "no call for a password login");
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|r| r.contains("second-factor-only client")),
        "{rec}"
    );

    // An empty User-Password with NAS-Port-Type Virtual, from a NAS whose Called-Station-Id
    // is `called`.
    let empty_password = |called: &str| {
        py(
            &srv,
            &[
                "--user",
                "alice",
                "--password",
                "",
                "--nas-port-type",
                "5",
                "--called-station-id",
                called,
                "--timeout",
                "35",
            ],
        )
    };
    // A VPN sends one for a user who typed no password (Virtual is common on VPNs too): not
    // a second-factor-only request, so no call.
    let r = empty_password("192.0.2.1");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(standin.calls().len(), 1, "no call for an empty password");
    // RD Gateway's own shape with an empty User-Password (a proxy hop may add one) still
    // gets its call.
    let r = empty_password("UserAuthType:PW");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(standin.calls().len(), 2);
    // A smart card logon gets its call the same way, and says so in the record.
    let r = empty_password("UserAuthType:SC");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    assert_eq!(standin.calls().len(), 3);
    let rec = &srv.audit_json("alice")[0];
    assert!(
        rec["reason"]
            .as_str()
            .is_some_and(|r| r.contains("RD Gateway logon by smart card")),
        "{rec}"
    );
    // A call the provider cannot place: there is no other method to offer behind a
    // gateway, so the user is not told to use one.
    standin.fail_calls(Some((503, 20500, "Service unavailable")));
    let r = rdg("127.0.0.1");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(
        message(&r),
        "The call could not be placed. Try again later.",
        "{r}"
    );
    standin.fail_calls(None);

    // MS-CHAP's password change (a VPN user whose password expired) brings no User-Password
    // and no MS-CHAP response, but MS-CHAP-Challenge and MS-CHAP2-CPW: a password login all
    // the same, so no call.
    let microsoft = |typ: u8, len: usize| {
        let mut v = vec![0, 0, 1, 55, typ, (len + 2) as u8];
        v.extend(std::iter::repeat_n(7u8, len));
        v
    };
    let (pkt, _) = AccessRequestBuilder::new(11, "alice")
        .attribute(61, &5u32.to_be_bytes())
        .attribute(30, b"192.0.2.1")
        .attribute(26, &microsoft(11, 16))
        .attribute(26, &microsoft(27, 66))
        .build(SECRET.as_bytes());
    let sock = srv.udp();
    sock.send(&pkt).unwrap();
    let mut buf = [0u8; 4096];
    sock.recv(&mut buf).expect("a reply");
    assert_eq!(buf[0], 3, "Access-Reject");
    assert_eq!(
        standin.calls().len(),
        3,
        "no call for an MS-CHAP password change"
    );

    // The same request from a normal client: no password, no login, no call.
    let r = rdg("127.0.0.2");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(standin.calls().len(), 3);
    // An unknown user gets no call either.
    let r = py(
        &srv,
        &[
            "--user",
            "mallory",
            "--nas-port-type",
            "5",
            "--timeout",
            "10",
        ],
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_eq!(standin.calls().len(), 3);
}

/// `no_factor = "allow"` on a second-factor-only client: a user with no number and no
/// token is let in on the gateway's own check (Azure MFA Server's "User match required"
/// unticked), audited as such; one whose token cannot be used there is not. It was
/// accepted by `config check` and then ignored.
#[test]
fn rd_gateway_no_factor_allow_lets_in_only_users_never_enrolled() {
    let slapd = common::slapd::Slapd::start_with(
        &[LdapUser::new("alice", ALICE_PW)],
        common::slapd::SlapdOptions {
            extra_ldif: "dn: uid=carol,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                         uid: carol\ncn: Carol\nsn: Carol\nuserPassword: carol-pw\n\n\
                         dn: uid=dave,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                         uid: dave\ncn: Dave\nsn: Dave\nuserPassword: dave-pw\n\n"
                .into(),
            ..Default::default()
        },
    );
    let standin = Standin::start();
    let clients = [client(
        "rd-gateway",
        "127.0.0.1",
        "second_factor_only = true\nmethods = [\"voice\"]\nvoice_mode = \"hold\"\n\
         voice_budget_secs = 30\nno_factor = \"allow\"",
    )];
    let srv = start(&slapd, &standin, "", "", &clients);
    srv.enroll("dave", &[]);
    // A waiting bypass is not spent on a login let in without a factor anyway.
    cli_ok(&srv, &["user", "bypass", "carol"]);
    let r = rd_gateway_request_for(&srv, "127.0.0.1", "carol");
    assert_eq!(code_of(&r), "Access-Accept", "{r}");
    let rec = &srv.audit_json("carol")[0];
    assert_eq!(rec["mode"], "primary-only", "{rec}");
    assert!(standin.calls().is_empty());
    let show = cli_ok(&srv, &["user", "show", "carol"]);
    assert!(show.contains("bypass:   until"), "still waiting: {show}");
    cli_ok(&srv, &["user", "bypass", "carol", "--cancel"]);
    // Not RD Gateway's own shape (another policy NPS forwards from that address, with no
    // password): not let in on nothing.
    let r = py(
        &srv,
        &[
            "--user",
            "carol",
            "--nas-port-type",
            "15",
            "--timeout",
            "10",
        ],
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    // The audit says what decided it, not only "no phone number".
    let rec = &srv.audit_json("carol")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("only on RD Gateway's own requests"),
        "{rec}"
    );
    // Nor by a waiting bypass: nobody checked a password for such a request.
    cli_ok(&srv, &["user", "bypass", "dave"]);
    let r = py(
        &srv,
        &["--user", "dave", "--nas-port-type", "15", "--timeout", "10"],
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    assert_ne!(srv.audit_json("dave")[0]["mode"], "bypass");
    cli_ok(&srv, &["user", "bypass", "dave", "--cancel"]);
    // A token is a second factor, if not one a gateway can use: refused.
    let r = rd_gateway_request_for(&srv, "127.0.0.1", "dave");
    assert_eq!(code_of(&r), "Access-Reject", "{r}");
    let rec = &srv.audit_json("dave")[0];
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("the user's tokens cannot answer the gateway"),
        "{rec}"
    );
    let out = srv.cli(&["config", "check", "--connect", "--user", "dave"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARN user dave: would be refused on client(s) \"rd-gateway\": its tokens")
            && text.contains("user set-phone"),
        "{text}"
    );
}

/// One entry, two names (`uid: jdoe`, `uid: john.doe`), its phone stored under jdoe. RD
/// Gateway asking for john.doe gets no call: that name holds nothing of its own, and the
/// stored phone (or a fraud block) belongs to the other; as for a password login.
#[test]
fn rd_gateway_request_under_another_name_of_an_enrolled_entry_gets_no_call() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let stored = "+15550199";
    for number in [DIRECTORY_MOBILE, stored] {
        standin.script(number, Script::Press("", Duration::from_millis(500)));
    }
    let clients = [client(
        "rd-gateway",
        "127.0.0.1",
        "second_factor_only = true\nmethods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 30",
    )];
    let srv = start(&slapd, &standin, "", "", &clients);
    cli_ok(&srv, &["user", "set-phone", "jdoe", stored]);
    let rdg = |user: &str| rd_gateway_request_for(&srv, "127.0.0.1", user);
    let r = rdg("john.doe");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(standin.calls().is_empty(), "{:?}", standin.calls());
    srv.refused_as_another_name("john.doe", "jdoe");
    // The name that holds the phone is called there, as before.
    let r = rdg("jdoe");
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(standin.calls().len(), 1);
}

/// One entry, two names, its only factor the directory's mobile. A fraud report on a call
/// under jdoe blocks jdoe; john.doe's SMS prompt, opened before, then ends: the right code
/// to it is refused, as it would be after a block of john.doe's own.
#[test]
fn a_fraud_block_under_the_other_name_ends_open_prompts() {
    let slapd = directory_with_two_named_entry();
    let standin = Standin::start();
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "methods = [\"sms\", \"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 20\n\
         app_passwords = true",
    )];
    let srv = start(&slapd, &standin, "", "", &clients);
    cli_ok(&srv, &["user", "set-method", "john.doe", "sms"]);
    let app_password = cli_ok(&srv, &["user", "app-password", "add", "john.doe"])
        .trim()
        .to_string();
    let pw = "jdoe-Secret-pw";
    let first = py(&srv, &["--user", "john.doe", "--password", pw]);
    assert_eq!(
        code_of(&first),
        "Access-Challenge",
        "{first}\n{}",
        srv.log()
    );
    let code = standin.sms()[0].code();
    cli_ok(&srv, &["user", "set-method", "jdoe", "voice"]);
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("0", Duration::from_millis(300)),
    );
    let r = py(
        &srv,
        &["--user", "jdoe", "--password", pw, "--timeout", "25"],
    );
    assert!(message(&r).contains("fraud"), "{r}\n{}", srv.log());
    let r = py(
        &srv,
        &[
            "--user",
            "john.doe",
            "--password",
            &code,
            "--state",
            first["state"].as_str().unwrap(),
        ],
    );
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(message(&r).contains("blocked"), "{r}");
    assert_eq!(
        srv.audit_json("john.doe")[0]["reason"],
        "user blocked under the entry's other name \"jdoe\""
    );
    // An app password, which stands in for both factors, does not get past it either.
    let r = py(&srv, &["--user", "john.doe", "--password", &app_password]);
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    let rec = &srv.audit_json("john.doe")[0];
    assert_eq!(
        (&rec["mode"], &rec["reason"]),
        (
            &serde_json::json!("app-password"),
            &serde_json::json!("user blocked under the entry's other name \"jdoe\"")
        ),
        "{rec}"
    );
    // Deleting the blocked user would lift the block: only with --unblock, and audited so.
    let out = srv.cli(&["user", "delete", "jdoe"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("--unblock"),
        "{out:?}"
    );
    let show: serde_json::Value =
        serde_json::from_str(&cli_ok(&srv, &["user", "show", "jdoe", "--json"])).unwrap();
    assert!(show["blocked_at"].is_i64(), "still blocked: {show}");
    cli_ok(&srv, &["user", "delete", "jdoe", "--unblock"]);
    let rec = &srv.audit_json("jdoe")[0];
    assert_eq!(
        (&rec["result"], &rec["reason"]),
        (
            &serde_json::json!("delete"),
            &serde_json::json!("the block (fraud report) lifted")
        ),
        "{rec}"
    );
}

/// Alice's login on a call-prompt client, the call placed and left for the test to answer
/// (the stand-in posts nothing): the directory, stand-in and server to keep, the State of
/// the prompt, and the call.
fn a_call_waiting() -> (common::slapd::Slapd, Standin, Server, String, Call) {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let clients = [client("vpn", "127.0.0.1", "methods = [\"voice\"]")];
    let metrics = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    let srv = start(&slapd, &standin, "", metrics, &clients);
    let r1 = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let state = r1["state"].as_str().unwrap().to_string();
    let call = standin.calls()[0].clone();
    (slapd, standin, srv, state, call)
}

#[test]
fn forged_callbacks_change_nothing() {
    let (_slapd, standin, srv, state, call) = a_call_waiting();
    let url = call.gather_action();
    let approve = Standin::gather_params(&call, "");
    let enter = || {
        py(
            &srv,
            &["--user", "alice", "--password", "", "--state", &state],
        )
    };

    let forgeries = [
        ("no signature", Some(String::new())),
        ("garbage", Some("bm90LWEtc2lnbmF0dXJl".into())),
        (
            "wrong auth token",
            Some(twilio_signature("guessed-token", &url, &approve)),
        ),
        // Signed for the other parameters (Digits = 1) but sent with Digits = "".
        (
            "other params",
            Some(twilio_signature(
                AUTH_TOKEN,
                &url,
                &Standin::gather_params(&call, "1"),
            )),
        ),
        (
            "other URL",
            Some(twilio_signature(
                AUTH_TOKEN,
                &call.status_callback,
                &approve,
            )),
        ),
    ];
    for (what, sig) in forgeries {
        let res = standin.post_callback(&url, approve.clone(), sig);
        assert_eq!(res.status, 403, "{what}: {res:?}");
    }
    // A body beyond what any callback needs is refused unread (413), even one the stand-in
    // signs correctly.
    let mut padded = approve.clone();
    padded.push(("Pad".into(), "a".repeat(40 * 1024)));
    let res = standin.post_callback(&url, padded, None);
    assert_eq!(res.status, 413, "an oversized body: {res:?}");
    // Signed by Twilio, but about another call: one placed by someone else on the same
    // account, pointed at this login's URL.
    let other_call = approve
        .iter()
        .map(|(k, v)| match k.as_str() {
            "CallSid" => (k.clone(), "CA00000000000000000000000000000000".to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect::<Vec<_>>();
    assert_ne!(other_call, approve);
    let res = standin.post_callback(&url, other_call, None);
    assert_eq!(res.status, 403, "another call's callback: {res:?}");
    // Twilio's signature joins name and value with nothing between: a captured decline
    // (Digits = 1) with "Digits1" moved into the value before it (Caller) and Digits
    // dropped signs the same, and would read as `#` alone. Refused.
    let decline = Standin::gather_params(&call, "1");
    let sig = twilio_signature(AUTH_TOKEN, &url, &decline);
    let spliced: Vec<(String, String)> = decline
        .iter()
        .filter(|(k, _)| k != "Digits")
        .map(|(k, v)| match k.as_str() {
            "Caller" => (k.clone(), format!("{v}Digits1")),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    assert_eq!(
        twilio_signature(AUTH_TOKEN, &url, &spliced),
        sig,
        "the splice signs the same"
    );
    let res = standin.post_callback(&url, spliced, Some(sig.clone()));
    assert_eq!(res.status, 400, "a spliced decline: {res:?}");
    // The same through a name: Caller's value and "Digits" folded into one name.
    let caller = decline
        .iter()
        .find(|(k, _)| k == "Caller")
        .unwrap()
        .1
        .clone();
    let renamed: Vec<(String, String)> = decline
        .iter()
        .filter(|(k, _)| k != "Digits" && k != "Caller")
        .cloned()
        .chain([(format!("Caller{caller}Digits"), "1".to_string())])
        .collect();
    assert_eq!(
        twilio_signature(AUTH_TOKEN, &url, &renamed),
        sig,
        "signs the same"
    );
    let res = standin.post_callback(&url, renamed, Some(sig.clone()));
    assert_eq!(res.status, 400, "a decline spliced through a name: {res:?}");
    // And across a name and its value: Dig=its1.
    let split: Vec<(String, String)> = decline
        .iter()
        .map(|(k, v)| match k.as_str() {
            "Digits" => ("Dig".to_string(), format!("its{v}")),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    assert_eq!(
        twilio_signature(AUTH_TOKEN, &url, &split),
        sig,
        "signs the same"
    );
    let res = standin.post_callback(&url, split, Some(sig));
    assert_eq!(
        res.status, 400,
        "a decline split across a name and value: {res:?}"
    );
    // A parameter sent twice is refused the same way.
    let mut twice = approve.clone();
    twice.push(("Digits".into(), "1".into()));
    let res = standin.post_callback(&url, twice, None);
    assert_eq!(res.status, 400, "a repeated parameter: {res:?}");
    // Each counted in /metrics by why: the log has one line a minute at most.
    let refused = |reason: &str| {
        let body = common::radmfa::http_get(srv.metrics_addr(), "/metrics").2;
        common::peers::prometheus_parse(&body)
            [&format!("radmfa_callbacks_refused_total{{reason={reason}}}")]
    };
    assert_eq!(refused("unsigned"), 2.0, "no signature, garbage");
    assert_eq!(
        refused("bad_signature"),
        3.0,
        "wrong token, other params, other URL"
    );
    assert_eq!(refused("other_delivery"), 1.0, "another call's callback");
    assert_eq!(refused("spliced"), 4.0, "three splices and a repeat");
    // The call is still undecided: Enter gets the prompt again, not an Accept.
    let r2 = enter();
    assert_eq!(code_of(&r2), "Access-Challenge", "{r2}");
    assert!(message(&r2).contains("not answered yet"), "{r2}");
    // A forged status callback cannot fail it either; a genuine approval then works.
    let mut completed = approve.clone();
    completed.retain(|(k, _)| k != "Digits");
    let res = standin.post_callback(&call.status_callback, completed, Some("AAAA".into()));
    assert_eq!(res.status, 403);
    let res = standin.post_callback(&url, approve, None);
    assert_eq!(res.status, 200, "{res:?}");
    let r3 = enter();
    assert_eq!(code_of(&r3), "Access-Accept", "{r3}");
    assert!(srv.log().contains("provider callback refused"));
    // Anyone who reaches the listener can send unsigned ones by the thousand: they are
    // refused, and counted rather than logged a line each (the journal would drop radmfa's
    // own audit lines).
    for _ in 0..50 {
        let forged = standin.post_callback(&call.status_callback, vec![], Some("AAAA".into()));
        assert_eq!(forged.status, 403);
    }
    let lines = srv.log().matches("provider callback refused: bad").count();
    assert!(lines <= 2, "{lines} lines for 52 refusals:\n{}", srv.log());
}

/// radmfa with a challenge client for calls only, whose calls live 10 s (ring 5 s); the
/// delivery sections pass through `tweak` first.
fn with_10_s_calls(
    slapd: &common::slapd::Slapd,
    standin: &Standin,
    tweak: impl Fn(String) -> String,
) -> Server {
    let sections = delivery(standin, "");
    let short = tweak(sections.replace(
        "[voice]\n",
        "[voice]\ncall_lifetime_secs = 10\nring_timeout_secs = 5\n",
    ));
    assert_ne!(short, sections);
    let mut o = Options::new(&slapd.url);
    o.clients = Vec::new();
    o.extra = format!(
        "{short}{}",
        client("vpn", "127.0.0.1", "methods = [\"voice\"]")
    );
    Server::start(&o)
}

/// `#` pressed after the call's lifetime (the prompt's State has expired with it): the
/// callee must not hear that the sign-in is approved, and Enter does not accept.
#[test]
fn an_approval_after_the_calls_lifetime_is_not_announced_as_one() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    let srv = with_10_s_calls(&slapd, &standin, |s| s);
    let r1 = py(&srv, &["--user", "alice", "--password", ALICE_PW]);
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let state = r1["state"].as_str().unwrap().to_string();
    let call = standin.calls()[0].clone();
    std::thread::sleep(Duration::from_millis(11_000));
    let res = standin.post_callback(
        &call.gather_action(),
        Standin::gather_params(&call, ""),
        None,
    );
    assert_eq!(res.status, 200, "{res:?}");
    assert!(res.body.contains("already ended"), "{res:?}");
    assert!(!res.body.contains("is approved"), "{res:?}");
    let r2 = py(
        &srv,
        &["--user", "alice", "--password", "", "--state", &state],
    );
    assert_eq!(code_of(&r2), "Access-Reject", "{r2}");
}

/// Enter pressed after the call's lifetime, while the prompt's State still holds (it was
/// issued once the slow Calls API had answered, 2.5 s after the call's start): refused, and
/// the audit blames the call's lifetime, not voice_budget_secs, a held call's setting that
/// this challenge client does not use.
#[test]
fn enter_after_the_calls_lifetime_names_the_lifetime() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(DIRECTORY_MOBILE, Script::Silent);
    standin.set_call_delay(Duration::from_millis(2500));
    let srv = with_10_s_calls(&slapd, &standin, |s| {
        s.replace("timeout_ms = 2000", "timeout_ms = 3000")
    });
    let r1 = py(
        &srv,
        &["--user", "alice", "--password", ALICE_PW, "--timeout", "6"],
    );
    assert_eq!(code_of(&r1), "Access-Challenge", "{r1}");
    let state = r1["state"].as_str().unwrap().to_string();
    // The call ends 10 s after it began (2.5 s before this reply); the State 10 s after
    // this reply.
    std::thread::sleep(Duration::from_millis(8_000));
    let r2 = py(
        &srv,
        &["--user", "alice", "--password", "", "--state", &state],
    );
    assert_eq!(code_of(&r2), "Access-Reject", "{r2}");
    let rec = &srv.audit_json("alice")[0];
    assert_eq!(
        rec["reason"],
        "no answer to the call within its lifetime of 10 s ([voice] call_lifetime_secs)",
        "{rec}\n{}",
        srv.log()
    );
}

/// `#` alone posts an empty Digits with FinishedOnKey "#": approve. A gather result that
/// names no finish key (the gather timed out: no key pressed), with or without an empty
/// Digits, is no answer, and must not approve the login.
#[test]
fn a_gather_result_without_digits_does_not_approve() {
    let (_slapd, standin, srv, state, call) = a_call_waiting();
    let mut no_digits = Standin::gather_params(&call, "");
    no_digits.retain(|(k, _)| k != "Digits" && k != "FinishedOnKey");
    let res = standin.post_callback(&call.gather_action(), no_digits, None);
    assert_eq!(res.status, 200, "{res:?}");
    let r2 = py(
        &srv,
        &["--user", "alice", "--password", "", "--state", &state],
    );
    assert_eq!(code_of(&r2), "Access-Reject", "{r2}");
}

/// radmfa with one inline client that holds calls and takes no codes, a stand-in whose
/// calls are approved, and a token enrolled for alice.
fn inline_call_client_with_alice_enrolled(slapd: &common::slapd::Slapd) -> (Server, Standin) {
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(300)),
    );
    let clients = [client(
        "vpn",
        "127.0.0.1",
        "methods = [\"voice\"]\nvoice_mode = \"hold\"\notp_mode = \"inline\"\nvoice_budget_secs = 20",
    )];
    let srv = start(slapd, &standin, "", "", &clients);
    srv.enroll("alice", &[]);
    (srv, standin)
}

/// An inline client (password and code in one field) that holds phone calls and takes no
/// codes: a user who also has a token for other clients logs in with the password alone
/// and the call, rather than being refused for a missing code.
#[test]
fn an_inline_call_client_calls_a_user_who_also_has_a_token() {
    let slapd = directory();
    let (srv, standin) = inline_call_client_with_alice_enrolled(&slapd);
    let (r, _) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(standin.calls().len(), 1);
    assert_eq!(srv.audit_json("alice")[0]["mode"], "voice");
}

/// An inline client (`vpn`) that takes codes and holds calls.
fn inline_client_with_codes_and_calls() -> String {
    client(
        "vpn",
        "127.0.0.1",
        "methods = [\"totp\", \"voice\"]\nvoice_mode = \"hold\"\notp_mode = \"inline\"\n\
         voice_budget_secs = 20",
    )
}

/// An inline client that takes codes and holds calls: a token holder who chose calls
/// (`user set-method voice`) logs in with the password alone and the call; one who did not
/// is still refused for the missing code, and no call is placed for them.
#[test]
fn an_inline_client_with_codes_and_calls_calls_a_token_holder_who_chose_calls() {
    let slapd = directory();
    let standin = Standin::start();
    standin.script(
        DIRECTORY_MOBILE,
        Script::Press("", Duration::from_millis(300)),
    );
    let clients = [inline_client_with_codes_and_calls()];
    let srv = start(&slapd, &standin, "", "", &clients);
    srv.enroll("alice", &[]);
    let (r, _) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(standin.calls().is_empty());
    assert_eq!(
        srv.audit_json("alice")[0]["reason"],
        "no code found in the password field"
    );
    cli_ok(&srv, &["user", "set-method", "alice", "voice"]);
    let (r, _) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(standin.calls().len(), 1);
    assert_eq!(srv.audit_json("alice")[0]["mode"], "voice");
}

/// The same client and choice, for a token holder with no number that can be called:
/// refused for the missing code, with why, and not sent the code prompt the choice falls
/// back to (this client cannot show it).
#[test]
fn a_token_holder_who_chose_calls_without_a_number_is_refused_on_an_inline_client() {
    let slapd = common::slapd::Slapd::start(&[LdapUser {
        mobile: String::new(),
        ..LdapUser::new("alice", ALICE_PW)
    }]);
    let standin = Standin::start();
    let clients = [inline_client_with_codes_and_calls()];
    let srv = start(&slapd, &standin, "", "", &clients);
    srv.enroll("alice", &[]);
    cli_ok(&srv, &["user", "set-method", "alice", "voice"]);
    let (r, _) = held_login(&srv, "25");
    assert_eq!(code_of(&r), "Access-Reject", "{r}\n{}", srv.log());
    assert!(standin.calls().is_empty());
    let reason = srv.audit_json("alice")[0]["reason"].to_string();
    assert!(
        reason.contains("no code found in the password field")
            && reason.contains("no number that can be called"),
        "{reason}"
    );
}

/// On that client the field is never split, even for a token holder: it takes no codes, so
/// a password that holds the delimiter followed by digits is the password.
#[test]
fn an_inline_call_client_does_not_split_a_token_holders_password() {
    const PW: &str = "open,123456";
    let slapd = common::slapd::Slapd::start(&[LdapUser::new("alice", PW)]);
    let (srv, standin) = inline_call_client_with_alice_enrolled(&slapd);
    let r = py(
        &srv,
        &["--user", "alice", "--password", PW, "--timeout", "25"],
    );
    assert_eq!(code_of(&r), "Access-Accept", "{r}\n{}", srv.log());
    assert_eq!(standin.calls().len(), 1);
}
