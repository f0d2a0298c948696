//! The delivery providers' production HTTP client code against the local stand-in: Twilio's
//! Messages and Calls APIs (auth, errors, timeouts) and the generic HTTP provider (templates,
//! encodings, basic/bearer auth, what counts as success).

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::provider_standin::{Standin, ACCOUNT_SID, AUTH_TOKEN, SMS_FROM};
use radmfa::config::delivery::{HttpAuth, HttpSmsConfig, TemplateEncoding, TwilioConfig};
use radmfa::delivery::http::HttpSms;
use radmfa::delivery::twilio::{TwilioSms, TwilioVoice};
use radmfa::delivery::{CallRequest, CodeSender, ProviderError, VoiceCaller};
use radmfa::secret::Secret;

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn twilio(url: &str, token: &str, timeout_ms: u64) -> TwilioConfig {
    TwilioConfig {
        account_sid: ACCOUNT_SID.into(),
        auth_token: Secret::from(token),
        from: SMS_FROM.into(),
        api_url: url.into(),
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn text(code: &str) -> (Secret, Secret) {
    (
        Secret::from(format!("Your sign-in code is {code}")),
        Secret::from(code),
    )
}

#[test]
fn twilio_sms_is_a_messages_api_post() {
    let s = Standin::start();
    let p = TwilioSms::new(twilio(&s.url, AUTH_TOKEN, 2000));
    let (t, c) = text("246810");
    let sid = run(p.send_sms("+15550100", &t, &c)).unwrap().unwrap();
    assert!(sid.starts_with("SM"), "{sid}");
    let sent = s.sms();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].from.as_str()),
        ("+15550100", SMS_FROM)
    );
    assert_eq!(sent[0].body, "Your sign-in code is 246810");
}

#[test]
fn twilio_errors_name_status_and_twilio_code() {
    let s = Standin::start();
    let (t, c) = text("246810");
    let wrong = TwilioSms::new(twilio(&s.url, "not-the-token", 2000));
    let e = run(wrong.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(
        matches!(&e, ProviderError::Status { status: 401, detail, .. } if detail.contains("20003")),
        "{e}"
    );
    // A 4xx is a refusal: nothing went out, and the send limits give the slot back.
    assert!(e.surely_not_sent(), "{e}");
    let p = TwilioSms::new(twilio(&s.url, AUTH_TOKEN, 2000));
    let e = run(p.send_sms("+1", &t, &c)).unwrap_err();
    assert!(
        matches!(&e, ProviderError::Status { status: 400, detail, .. } if detail.contains("21211")),
        "{e}"
    );
    assert!(e.surely_not_sent(), "{e}");
    assert!(!e.to_string().contains("246810"));
    // A Twilio-compatible gateway (or a proxy) echoing what it was sent: the code and the
    // token are blanked from the message that reaches the audit reason.
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{AUTH_TOKEN}",
            common::provider_standin::ACCOUNT_SID
        ))
    };
    let echo = format!(
        "cannot queue 'Your sign-in code is 246810' (246810) for {AUTH_TOKEN} (Basic {basic})"
    );
    s.fail_sms(Some((502, 30001, &echo)));
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.contains("30001") && shown.contains("cannot queue"),
        "{shown}"
    );
    assert!(!shown.contains("246810"), "{shown}");
    assert!(!shown.contains(AUTH_TOKEN), "{shown}");
    assert!(!shown.contains(&basic[..20]), "{shown}");
    // A 5xx may come after the message was handed on: it stays counted.
    assert!(!e.surely_not_sent(), "{e}");
    s.fail_sms(None);
    assert!(s.sms().is_empty());
}

#[test]
fn provider_that_does_not_answer_times_out_below_the_nas_interval() {
    // Accepts connections (kernel backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let p = TwilioSms::new(twilio(&url, AUTH_TOKEN, 300));
    let (t, c) = text("111111");
    let start = Instant::now();
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(matches!(e, ProviderError::Timeout { ms: 300, .. }), "{e}");
    // Connected and the request written (into the backlog): it may have been taken, so a
    // timeout like this one stays counted against the send limits.
    assert!(!e.surely_not_sent(), "{e}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    // Nothing listening at all: a transport error (the connection refused), not the
    // timeout waited out.
    drop(silent);
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(matches!(e, ProviderError::Transport { .. }), "{e}");
    assert!(
        e.surely_not_sent(),
        "a refused connection sent nothing: {e}"
    );
}

/// A certificate that is not trusted (a TLS-inspecting egress proxy, a wrong host) is no
/// outage: it stays refused until someone acts, so `provider_failure = "allow"` must not
/// let logins in on it; and the reason says so, where reqwest alone says only "error
/// sending request". `openssl s_server` serves a certificate from a CA nobody trusts.
#[test]
fn an_untrusted_certificate_is_not_an_outage_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki::Pki::make(dir.path(), "provider");
    let port = common::slapd::free_port();
    // On loopback only, and stopped when the test ends, however it ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www"])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(&pki.server_cert)
        .arg("-key")
        .arg(&pki.server_key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = Killed(server);
    let until = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "openssl s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let p = TwilioSms::new(twilio(
        &format!("https://127.0.0.1:{port}"),
        AUTH_TOKEN,
        3000,
    ));
    let (t, c) = text("111111");
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    drop(server);
    assert!(matches!(e, ProviderError::Transport { .. }), "{e}");
    assert!(
        !e.is_outage(),
        "an untrusted certificate counted as an outage: {e}"
    );
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert!(!e.to_string().contains("111111"));
    // The handshake failed: the request was never written.
    assert!(e.surely_not_sent(), "{e}");
    // Nothing listening: that one is an outage.
    drop(e);
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(e.is_outage(), "{e}");
}

#[test]
fn twilio_call_carries_twiml_callback_caller_id_and_ring_time() {
    let s = Standin::start();
    let v = TwilioVoice::new(twilio(&s.url, AUTH_TOKEN, 2000), "+15550009999".into(), 25);
    let call = CallRequest {
        to: "+15550100".into(),
        twiml: "<Response><Gather finishOnKey=\"#\" action=\"http://cb/x\"/></Response>".into(),
        status_callback: "http://cb/status".into(),
    };
    let sid = run(v.place_call(&call)).unwrap().unwrap();
    assert!(sid.starts_with("CA"));
    let placed = &s.calls()[0];
    assert_eq!(placed.to, "+15550100");
    assert_eq!(placed.from, "+15550009999");
    assert_eq!(placed.twiml, call.twiml);
    assert_eq!(placed.status_callback, "http://cb/status");
    assert_eq!(placed.timeout, "25");
    assert_eq!(placed.gather_action(), "http://cb/x");
}

fn generic(s: &Standin, encoding: TemplateEncoding, body: &str, auth: HttpAuth) -> HttpSmsConfig {
    HttpSmsConfig {
        url: format!("{}/generic/send?to={{phone}}", s.url),
        method: "POST".into(),
        headers: vec![("X-Tenant".into(), "radmfa".into())],
        body: body.into(),
        encoding,
        content_type: match encoding {
            TemplateEncoding::Json => "application/json".into(),
            _ => "application/x-www-form-urlencoded".into(),
        },
        auth,
        success_status: vec![],
        success_body_contains: String::new(),
        timeout: Duration::from_millis(1000),
    }
}

#[test]
fn generic_http_form_template_with_basic_auth() {
    let s = Standin::start();
    let cfg = generic(
        &s,
        TemplateEncoding::Form,
        "text={message}&code={code}",
        HttpAuth::Basic {
            username: "gw-user".into(),
            password: Secret::from("gw-pass"),
        },
    );
    let (t, c) = text("135790");
    run(HttpSms::new(cfg).send_sms("+15550100", &t, &c)).unwrap();
    let req = &s.generic_requests()[0];
    assert_eq!(req.path_and_query, "/generic/send?to=%2B15550100");
    assert_eq!(req.body, "text=Your+sign-in+code+is+135790&code=135790");
    let basic = base64::engine::general_purpose::STANDARD.encode("gw-user:gw-pass");
    assert_eq!(req.headers["authorization"], format!("Basic {basic}"));
    assert_eq!(req.headers["x-tenant"], "radmfa");
    assert_eq!(
        req.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
}

/// A gateway taking the text in its url's query (GET): a space is sent as %20, which every
/// decoder reads as a space; as `+` (form encoding) a gateway decoding by RFC 3986 texted
/// "Your+sign-in+code+is+…".
#[test]
fn generic_http_get_with_the_message_in_the_url() {
    let s = Standin::start();
    let mut cfg = generic(&s, TemplateEncoding::Form, "", HttpAuth::None);
    cfg.url = format!("{}/generic/send?to={{phone}}&text={{message}}", s.url);
    cfg.method = "GET".into();
    let (t, c) = text("135790");
    run(HttpSms::new(cfg).send_sms("+15550100", &t, &c)).unwrap();
    let req = &s.generic_requests()[0];
    assert_eq!(
        req.path_and_query,
        "/generic/send?to=%2B15550100&text=Your%20sign-in%20code%20is%20135790"
    );
    let text = req.path_and_query.split("&text=").nth(1).unwrap();
    assert_eq!(
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .unwrap(),
        "Your sign-in code is 135790"
    );
}

#[test]
fn generic_http_json_bearer_and_success_tests() {
    let s = Standin::start();
    let mut cfg = generic(
        &s,
        TemplateEncoding::Json,
        r#"{"to":"{phone}","text":"{message}"}"#,
        HttpAuth::Bearer(Secret::from("tok-123")),
    );
    cfg.success_body_contains = "\"queued\"".into();
    let p = HttpSms::new(cfg.clone());
    let (t, c) = text("864200");
    s.set_generic_reply(200, r#"{"status":"queued"}"#, Duration::ZERO);
    run(p.send_sms("+15550100", &t, &c)).unwrap();
    let req = &s.generic_requests()[0];
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["to"], "+15550100");
    assert_eq!(body["text"], "Your sign-in code is 864200");
    assert_eq!(req.headers["authorization"], "Bearer tok-123");

    // 200 without the success marker is a failure.
    s.set_generic_reply(200, r#"{"status":"rejected"}"#, Duration::ZERO);
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(matches!(e, ProviderError::NotAccepted { .. }), "{e}");
    // Answered 2xx: the gateway may have sent it.
    assert!(!e.surely_not_sent(), "{e}");
    // An error status, with the gateway echoing the code: the code is blanked out.
    s.set_generic_reply(500, "cannot deliver 864200", Duration::ZERO);
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(
        matches!(e, ProviderError::Status { status: 500, .. }),
        "{e}"
    );
    assert!(!e.to_string().contains("864200"), "{e}");
    assert!(!e.surely_not_sent(), "a 5xx may come after the send: {e}");
    // The gateway's rate limit refused it: not sent.
    s.set_generic_reply(429, "slow down", Duration::ZERO);
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(
        matches!(e, ProviderError::Status { status: 429, .. }),
        "{e}"
    );
    assert!(e.surely_not_sent(), "{e}");
    // Listed statuses only.
    cfg.success_status = vec![202];
    cfg.success_body_contains.clear();
    s.set_generic_reply(200, "ok", Duration::ZERO);
    let e = run(HttpSms::new(cfg).send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(
        matches!(e, ProviderError::Status { status: 200, .. }),
        "{e}"
    );
    // A 2xx outside the listed ones may still have been sent.
    assert!(!e.surely_not_sent(), "{e}");
    // Too slow.
    s.set_generic_reply(200, "\"queued\"", Duration::from_secs(3));
    let start = Instant::now();
    let e = run(p.send_sms("+15550100", &t, &c)).unwrap_err();
    assert!(matches!(e, ProviderError::Timeout { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(!e.surely_not_sent(), "no answer after the request: {e}");
}

#[test]
fn delivery_config_defaults_match_the_replaced_product() {
    let text = r#"
[ldap]
urls = ["ldap://127.0.0.1"]
bind_dn = "cn=admin"
bind_password = "pw"
base_dn = "dc=example,dc=org"
[sms]
provider = "twilio"
[voice]
provider = "twilio"
[twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token_file = "token"
from = "+15550001111"
[callbacks]
listen = "127.0.0.1:8088"
public_url = "https://radmfa.example.org/"
[[client]]
name = "nas"
address = "127.0.0.1"
secret = "0123456789abcdef"
"#;
    let dir = tempfile::tempdir().unwrap();
    common::peers::write_private(&dir.path().join("token"), "tok\n");
    let cfg = radmfa::config::Config::parse(text, &dir.path().join("radmfa.toml")).unwrap();
    let sms = cfg.delivery.sms.as_ref().unwrap();
    assert_eq!(sms.code_length, 6);
    assert_eq!(
        sms.code_ttl,
        Duration::from_secs(300),
        "Azure MFA Server: 300 s"
    );
    assert_eq!(
        (
            cfg.delivery.send_limits.max_per_user,
            cfg.delivery.send_limits.window
        ),
        (5, Duration::from_secs(300))
    );
    let voice = cfg.delivery.voice.as_ref().unwrap();
    assert_eq!(
        voice.caller_id, "+15550001111",
        "caller ID defaults to the sender"
    );
    assert_eq!(voice.fraud_digits, "0");
    assert!(
        voice.greeting.ends_with("press zero, then pound."),
        "{}",
        voice.greeting
    );
    // Without a greeting of its own, the callee is told the fraud keys configured: a fixed
    // "press zero" beside fraud_digits = "9" turned every fraud report into a decline.
    let voice_section = "[voice]\nprovider = \"twilio\"\n";
    assert!(text.contains(voice_section));
    let nine = text.replace(
        voice_section,
        &format!("{voice_section}fraud_digits = \"9*\"\n"),
    );
    let cfg9 = radmfa::config::Config::parse(&nine, &dir.path().join("radmfa.toml")).unwrap();
    let voice9 = cfg9.delivery.voice.as_ref().unwrap();
    assert_eq!(voice9.fraud_digits, "9*");
    assert!(
        voice9.greeting.ends_with("press nine star, then pound."),
        "{}",
        voice9.greeting
    );
    let greeting_warned = |c: &radmfa::config::Config| {
        radmfa::admin::review::warnings(c)
            .into_iter()
            .find(|w| w.starts_with("voice: greeting"))
    };
    assert_eq!(greeting_warned(&cfg), None);
    assert_eq!(greeting_warned(&cfg9), None, "the default names the keys");
    // A greeting copied from an older radmfa.toml (or Azure MFA Server's wording) beside a
    // site's own fraud code: config check says so.
    let copied = nine.replace(
        voice_section,
        &format!(
            "{voice_section}greeting = \"Press pound to approve. If this was not you, \
             press zero, then pound.\"\n"
        ),
    );
    let copied = radmfa::config::Config::parse(&copied, &dir.path().join("radmfa.toml")).unwrap();
    let w = greeting_warned(&copied).expect("warned");
    assert!(w.contains("press 0 but fraud_digits = \"9*\""), "{w}");
    // One that names the configured keys, as digits, is fine.
    let own = nine.replace(
        voice_section,
        &format!(
            "{voice_section}greeting = \"Fraud? Press 9*. One of our staff will call you.\"\n"
        ),
    );
    let own = radmfa::config::Config::parse(&own, &dir.path().join("radmfa.toml")).unwrap();
    assert_eq!(greeting_warned(&own), None);
    // One that never names them tells a victim no way to report the call: said too.
    let silent = text.replace(
        voice_section,
        &format!("{voice_section}greeting = \"Press pound to approve.\"\n"),
    );
    let silent = radmfa::config::Config::parse(&silent, &dir.path().join("radmfa.toml")).unwrap();
    let w = greeting_warned(&silent).expect("warned");
    assert!(w.contains("never names fraud_digits = \"0\""), "{w}");
    let twilio = cfg.delivery.twilio.as_ref().unwrap();
    assert_eq!(twilio.auth_token.expose(), b"tok");
    assert!(twilio.timeout < Duration::from_secs(3), "below NPS's 3 s");
    assert_eq!(
        cfg.delivery.callbacks.as_ref().unwrap().public_url,
        "https://radmfa.example.org"
    );
    let f = &cfg.clients[0].factors;
    assert_eq!(f.voice_budget, Duration::from_secs(50));
    assert!(!f.app_passwords && !f.second_factor_only);
    assert_eq!(f.voice_mode, radmfa::config::delivery::VoiceMode::Challenge);
    // Challenge clients keep the server deadline; only a holding client gets its budget.
    assert_eq!(
        f.request_deadline(cfg.server.request_deadline),
        cfg.server.request_deadline
    );
    let dump = format!("{cfg:?}");
    assert!(!dump.contains("\"tok\""), "auth token masked: {dump}");
}

/// A setup with calls and no `[sms]` (an RD Gateway signing everyone in by call) sets its
/// send limits in `[voice]`: there was no key for them, and adding `[sms]` to get one
/// offered SMS to every client. With `[sms]` present they belong there, named so.
#[test]
fn calls_without_sms_take_their_send_limits_from_voice() {
    let text = |sms: &str, voice_keys: &str| {
        format!(
            r#"
[ldap]
urls = ["ldap://127.0.0.1"]
bind_dn = "cn=admin"
bind_password = "pw"
base_dn = "dc=example,dc=org"
{sms}
[voice]
provider = "twilio"
{voice_keys}
[twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "tok"
from = "+15550001111"
[callbacks]
listen = "127.0.0.1:8088"
public_url = "https://radmfa.example.org/"
[[client]]
name = "rdg"
address = "127.0.0.1"
secret = "0123456789abcdef"
methods = ["voice"]
"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radmfa.toml");
    let parse = |t: String| radmfa::config::Config::parse(&t, &path);
    let cfg = parse(text("", "max_per_nas = 2000\nwindow_secs = 600")).unwrap();
    assert!(cfg.delivery.sms.is_none());
    let limits = cfg.delivery.send_limits;
    assert_eq!(
        (limits.max_per_user, limits.max_per_nas, limits.window),
        (5, 2000, Duration::from_secs(600))
    );
    let defaults = parse(text("", "")).unwrap().delivery.send_limits;
    assert_eq!(
        (defaults.max_per_user, defaults.max_per_nas, defaults.window),
        (5, 200, Duration::from_secs(300))
    );
    let e = parse(text("[sms]\nprovider = \"twilio\"", "max_per_nas = 2000"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("voice.max_per_nas") && e.contains("[sms] is present"),
        "{e}"
    );
    let e = parse(text("", "max_per_user = 0")).unwrap_err().to_string();
    assert!(e.contains("voice.max_per_user"), "{e}");
}

/// A gateway that answers, then loses the rest of its body (`Content-Length: 1000`, five
/// bytes, the connection closed), as a flaky proxy or a gateway crashing mid-answer does.
/// The status decides: a 2xx was taken (sent), unless success_body_contains asks for what
/// was lost (unclear, not sent); a 4xx stays a refusal. Before, each was an outage, which
/// `provider_failure = "allow"` failed open on (red team).
#[test]
fn a_provider_answer_whose_body_is_cut_off_is_judged_by_its_status() {
    use std::io::{Read, Write};
    let gateway = |status: &'static str, body: &'static str| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 1000\r\n\r\n{body}").as_bytes(),
                );
            }
        });
        port
    };
    let cfg = |port: u16, contains: &str| HttpSmsConfig {
        url: format!("http://127.0.0.1:{port}/send"),
        method: "POST".into(),
        headers: vec![],
        body: "to={phone}&text={message}".into(),
        encoding: TemplateEncoding::Form,
        content_type: "application/x-www-form-urlencoded".into(),
        auth: HttpAuth::None,
        success_status: vec![],
        success_body_contains: contains.into(),
        timeout: Duration::from_millis(2000),
    };
    let (t, c) = text("246810");
    let sent = run(HttpSms::new(cfg(gateway("200 OK", "hello"), "")).send_sms("+15550100", &t, &c));
    assert!(matches!(sent, Ok(None)), "{sent:?}");
    let unclear =
        run(HttpSms::new(cfg(gateway("200 OK", "hello"), "queued")).send_sms("+15550100", &t, &c))
            .unwrap_err();
    assert!(
        matches!(unclear, ProviderError::NotAccepted { .. }) && !unclear.is_outage(),
        "{unclear:?}"
    );
    let refused = run(
        HttpSms::new(cfg(gateway("400 Bad Request", "bad apikey=QueryKey"), "")).send_sms(
            "+15550100",
            &t,
            &c,
        ),
    )
    .unwrap_err();
    assert!(
        matches!(refused, ProviderError::Status { status: 400, .. })
            && !refused.is_outage()
            && refused.surely_not_sent(),
        "{refused:?}"
    );
    // What was read of the refusal is its detail, but for its last word: it may be the
    // start of a key cut in two, which masking would not find (review: `apikey=QueryKey`
    // of `QueryKey7770abcdef`). With nothing read, the reason says why (before, the audit
    // reason ended "HTTP 400: " with nothing after it).
    assert!(
        refused
            .to_string()
            .ends_with("HTTP 400: bad (the rest was cut off)"),
        "{refused}"
    );
    let blank =
        run(HttpSms::new(cfg(gateway("400 Bad Request", ""), "")).send_sms("+15550100", &t, &c))
            .unwrap_err();
    assert!(
        blank
            .to_string()
            .contains("HTTP 400: the answer's body could not be read ("),
        "{blank}"
    );
}

/// `config check --connect` reads the Twilio account with the configured credentials:
/// nothing is sent, and a wrong token is a 401 with Twilio's code. The answer's own
/// `auth_token` field is not carried anywhere.
#[test]
fn the_twilio_account_is_read_without_sending() {
    let s = Standin::start();
    let got = run(radmfa::delivery::twilio::account(&twilio(
        &s.url, AUTH_TOKEN, 2000,
    )))
    .unwrap();
    assert_eq!((got.status.as_str(), got.kind.as_str()), ("active", "Full"));
    s.set_account("suspended", "Trial");
    let got = run(radmfa::delivery::twilio::account(&twilio(
        &s.url, AUTH_TOKEN, 2000,
    )))
    .unwrap();
    assert_eq!(
        (got.status.as_str(), got.kind.as_str()),
        ("suspended", "Trial")
    );
    assert!(!format!("{got:?}").contains(AUTH_TOKEN));
    let e = run(radmfa::delivery::twilio::account(&twilio(
        &s.url,
        "wrong-token",
        2000,
    )))
    .unwrap_err();
    assert!(
        matches!(e, ProviderError::Status { status: 401, .. }) && e.to_string().contains("20003"),
        "{e}"
    );
    assert!(s.sms().is_empty() && s.calls().is_empty());
}

/// The generic gateway is reached with an `OPTIONS` request to its server's root: no path,
/// no query (which may hold a key), no credentials, nothing sent; any answer is reached.
/// The origin shown holds no user information.
#[test]
fn the_http_gateway_is_reached_without_sending() {
    let s = Standin::start();
    let mut cfg = generic(
        &s,
        TemplateEncoding::Form,
        "to={phone}&text={message}",
        HttpAuth::Bearer(Secret::from("gw-secret-token")),
    );
    let host = s.url.trim_start_matches("http://");
    cfg.url = format!("http://user:pw-in-url@{host}/generic/send?key=KEY-IN-QUERY&to={{phone}}");
    let (origin, status, proxy_said) = run(radmfa::delivery::http::reach(&cfg)).unwrap();
    assert_eq!(origin, s.url);
    assert_eq!((status, proxy_said), (404, None));
    assert_eq!(
        s.other_requests(),
        vec![("OPTIONS".to_string(), "/".to_string(), false)]
    );
    assert!(s.generic_requests().is_empty());
    // Nothing listens there: a transport error, said without the URL.
    cfg.url = format!(
        "http://127.0.0.1:{}/send?key=KEY-IN-QUERY",
        common::slapd::free_port()
    );
    let e = run(radmfa::delivery::http::reach(&cfg)).unwrap_err();
    assert!(matches!(e, ProviderError::Transport { .. }), "{e}");
    assert!(!e.to_string().contains("KEY-IN-QUERY"), "{e}");
}
