//! A local stand-in for Twilio's REST API, so radmfa's production HTTP client runs unchanged
//! against it (`[twilio] api_url`). It speaks the real request shapes:
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form: To, From, Body,
//!   StatusCallback): recorded; a test reports the message's fate to its StatusCallback
//!   (`report_sms`), signed as Twilio signs it
//! - `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` (form: To, From, Twiml,
//!   StatusCallback, ...)
//! - `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` (form: Status =
//!   `completed` or `canceled`): ends the call; its script stops, and the StatusCallback
//!   gets `canceled` (every call here is still ringing until its script plays)
//! - `GET /2010-04-01/Accounts/{AccountSid}.json`: the account's status and type
//!   (`set_account`), which `config check --connect` reads
//!
//! with HTTP basic auth (Account SID : auth token), answering 201 with Twilio-shaped JSON or
//! Twilio's error object. SMS are recorded. A call plays its script: after a delay it posts
//! the `<Gather>` result (`Digits`, `FinishedOnKey`) to the TwiML's action URL — following
//! Twilio's documented <Gather> rules: the gather ends at the finish key, and the finish key
//! pressed before any digit, or a timeout, posts nothing unless `actionOnEmptyResult` is
//! true — and then the final `CallStatus` to the StatusCallback, each signed the way Twilio signs webhooks
//! (`X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + sorted params))) — written
//! here independently of radmfa's verifier.
//!
//! There is also `POST /generic/send`, a plain gateway for the generic HTTP provider, which
//! records the request and answers with a configurable status and body. Any other request is
//! recorded (`other_requests`) and answered 404.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "standin-auth-token-6f1d";
pub const SMS_FROM: &str = "+15550001111";

#[derive(Debug, Clone)]
pub struct Sms {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    /// The StatusCallback the message was sent with, if any.
    pub status_callback: Option<String>,
}

impl Sms {
    /// The run of digits in the message (the code).
    pub fn code(&self) -> String {
        self.body
            .split(|c: char| !c.is_ascii_digit())
            .rfind(|s| s.len() >= 4)
            .unwrap_or_default()
            .to_string()
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub twiml: String,
    pub status_callback: String,
    pub timeout: String,
}

impl Call {
    /// The `<Gather action="...">` URL, XML-unescaped.
    pub fn gather_action(&self) -> String {
        self.gather_attribute("action")
            .expect("Gather action in TwiML")
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
    }

    /// An attribute of the TwiML's `<Gather>`, as written.
    fn gather_attribute(&self, name: &str) -> Option<&str> {
        let tag = &self.twiml[self.twiml.find("<Gather")?..];
        let tag = &tag[..tag.find('>')?];
        let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let rest = &tag[i..];
        Some(&rest[..rest.find('"')?])
    }

    /// What Twilio posts to the action URL for `keys` pressed in order, then silence until
    /// the timeout: (Digits, FinishedOnKey), or `None` when it posts nothing and falls
    /// through to the next verb (nothing entered, and no `actionOnEmptyResult="true"`).
    pub fn gather_result(&self, keys: &str) -> Option<(String, String)> {
        let finish = self.gather_attribute("finishOnKey").unwrap_or("#");
        let on_empty = self.gather_attribute("actionOnEmptyResult") == Some("true");
        let (digits, finished) = match finish.chars().next().and_then(|f| keys.find(f)) {
            Some(at) => (&keys[..at], finish),
            None => (keys, ""),
        };
        (!digits.is_empty() || on_empty).then(|| (digits.to_string(), finished.to_string()))
    }
}

/// What the callee does.
#[derive(Debug, Clone)]
pub enum Script {
    /// Answers and presses `digits` then `#` after the delay (`""` = just `#`: approve).
    Press(&'static str, Duration),
    /// Answers and presses nothing until the gather times out after the delay.
    Silence(Duration),
    /// Never answers; the provider reports `no-answer` after the delay.
    NoAnswer(Duration),
    /// Never answered; the provider reports this `CallStatus` (`busy`, `failed`) after the
    /// delay.
    Ends(&'static str, Duration),
    /// Answers and hangs up without pressing a key.
    HangUp(Duration),
    /// Nothing ever comes back (provider outage, or a test that posts callbacks itself).
    Silent,
}

#[derive(Debug, Clone)]
pub struct CallbackResult {
    pub url: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct GenericRequest {
    pub path_and_query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

#[derive(Default)]
struct Recorded {
    sms: Vec<Sms>,
    calls: Vec<Call>,
    callbacks: Vec<CallbackResult>,
    generic: Vec<GenericRequest>,
    scripts: HashMap<String, Script>,
    sms_delay: Duration,
    /// How long the Calls API takes to answer, after the call is recorded (and placed).
    call_delay: Duration,
    /// When set, the Messages API answers with this Twilio error (HTTP status, code, text).
    sms_failure: Option<(u16, u32, String)>,
    /// The same for the Calls API.
    call_failure: Option<(u16, u32, String)>,
    generic_reply: (u16, String),
    generic_delay: Duration,
    /// Calls ended through the API: (CallSid, the Status asked for).
    ended: Vec<(String, String)>,
    /// What the Account resource says: (status, type); ("active", "Full") unless set.
    account: Option<(String, String)>,
    /// Requests no route took: (method, path and query, whether they carried credentials).
    others: Vec<(String, String, bool)>,
    /// The status they are answered with; 404 unless set.
    other_status: Option<u16>,
    /// A header they are answered with (a proxy's `X-Squid-Error`, say).
    other_header: Option<(String, String)>,
}

type Shared = Arc<Mutex<Recorded>>;

pub struct Standin {
    pub url: String,
    state: Shared,
    rt: tokio::runtime::Runtime,
}

/// Twilio's signature, computed the way its documentation describes.
pub fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = url.to_string();
    for (k, v) in &sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = serde_json::json!({
        "code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

fn form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn sid(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// `GET /2010-04-01/Accounts/{AccountSid}.json`: the account, as Twilio gives it (its auth
/// token among the fields, as Twilio's own answer has it).
async fn account(
    State(st): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if account.strip_suffix(".json") != Some(ACCOUNT_SID) || !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let (status, kind) = st
        .lock()
        .unwrap()
        .account
        .clone()
        .unwrap_or(("active".into(), "Full".into()));
    let reply = serde_json::json!({
        "sid": ACCOUNT_SID, "friendly_name": "radmfa tests", "status": status, "type": kind,
        "auth_token": AUTH_TOKEN, "owner_account_sid": ACCOUNT_SID,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}.json"),
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        reply.to_string(),
    )
        .into_response()
}

/// Any other request: recorded, and answered 404 as a web server's root often is (or as
/// `set_other_status` says).
async fn other(State(st): State<Shared>, req: axum::extract::Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let credentials = req.headers().contains_key("authorization");
    let mut g = st.lock().unwrap();
    g.others.push((req.method().to_string(), path, credentials));
    let status = StatusCode::from_u16(g.other_status.unwrap_or(404)).unwrap();
    let mut resp = status.into_response();
    if let Some((name, value)) = &g.other_header {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(value).unwrap(),
        );
    }
    resp
}

async fn messages(
    State(st): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if account != ACCOUNT_SID || !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let f = form(&body);
    let (Some(to), Some(from), Some(text)) = (f.get("To"), f.get("From"), f.get("Body")) else {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    if !to.starts_with('+') || to.len() < 9 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let (delay, failure) = {
        let g = st.lock().unwrap();
        (g.sms_delay, g.sms_failure.clone())
    };
    if let Some((status, code, text)) = failure {
        return twilio_error(StatusCode::from_u16(status).unwrap(), code, &text);
    }
    let sid = sid("SM");
    st.lock().unwrap().sms.push(Sms {
        sid: sid.clone(),
        to: to.clone(),
        from: from.clone(),
        body: text.clone(),
        status_callback: f.get("StatusCallback").cloned(),
    });
    // Taken, then slow to say so, as a provider under load is: a client that gives up
    // waiting (and drops the connection, which cancels this handler) does not unsend it.
    tokio::time::sleep(delay).await;
    let reply = serde_json::json!({
        "sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": from, "body": text,
        "status": "queued", "num_segments": "1", "direction": "outbound-api",
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"),
    });
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        reply.to_string(),
    )
        .into_response()
}

/// Twilio's "modify a live call", for ending it.
async fn update_call(
    State(st): State<Shared>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if account != ACCOUNT_SID || !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let sid = call.strip_suffix(".json").unwrap_or(&call).to_string();
    let status = form(&body).get("Status").cloned().unwrap_or_default();
    if status != "completed" && status != "canceled" {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21218,
            "Invalid Status: must be canceled or completed",
        );
    }
    let (placed, first) = {
        let mut g = st.lock().unwrap();
        let placed = g.calls.iter().find(|c| c.sid == sid).cloned();
        let first = placed.is_some() && !g.ended.iter().any(|(s, _)| *s == sid);
        if placed.is_some() {
            g.ended.push((sid.clone(), status.clone()));
        }
        (placed, first)
    };
    let Some(placed) = placed else {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    if first {
        let st = st.clone();
        let call = placed.clone();
        tokio::spawn(async move {
            let url = call.status_callback.clone();
            webhook(&st, &url, call_params(&call, "canceled"), None).await;
        });
    }
    let reply = serde_json::json!({
        "sid": sid, "account_sid": ACCOUNT_SID, "to": placed.to, "from": placed.from,
        "status": "canceled", "direction": "outbound-api",
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        reply.to_string(),
    )
        .into_response()
}

async fn calls(
    State(st): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if account != ACCOUNT_SID || !authorized(&headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let f = form(&body);
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("To").is_empty()
        || get("From").is_empty()
        || (get("Twiml").is_empty() && get("Url").is_empty())
    {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21205,
            "Url or Twiml parameter is required.",
        );
    }
    let failure = st.lock().unwrap().call_failure.clone();
    if let Some((status, code, text)) = failure {
        return twilio_error(StatusCode::from_u16(status).unwrap(), code, &text);
    }
    let call = Call {
        sid: sid("CA"),
        to: get("To"),
        from: get("From"),
        twiml: get("Twiml"),
        status_callback: get("StatusCallback"),
        timeout: get("Timeout"),
    };
    let (script, delay) = {
        let mut g = st.lock().unwrap();
        g.calls.push(call.clone());
        (
            g.scripts.get(&call.to).cloned().unwrap_or(Script::Silent),
            g.call_delay,
        )
    };
    tokio::spawn(play(st.clone(), call.clone(), script));
    tokio::time::sleep(delay).await;
    let reply = serde_json::json!({
        "sid": call.sid, "account_sid": ACCOUNT_SID, "to": call.to, "from": call.from,
        "status": "queued", "direction": "outbound-api",
    });
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        reply.to_string(),
    )
        .into_response()
}

/// Posts one signed webhook, as Twilio does, and records radmfa's answer.
async fn webhook(
    st: &Shared,
    url: &str,
    params: Vec<(String, String)>,
    signature: Option<String>,
) -> CallbackResult {
    let sig = signature.unwrap_or_else(|| twilio_signature(AUTH_TOKEN, url, &params));
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    // Straight to loopback, whatever proxy the runner's environment names.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let result = match client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(body)
        .send()
        .await
    {
        Ok(r) => CallbackResult {
            url: url.to_string(),
            status: r.status().as_u16(),
            body: r.text().await.unwrap_or_default(),
        },
        Err(e) => CallbackResult {
            url: url.to_string(),
            status: 0,
            body: e.to_string(),
        },
    };
    st.lock().unwrap().callbacks.push(result.clone());
    result
}

fn call_params(call: &Call, status: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call.sid.as_str()),
        ("CallStatus", status),
        ("Called", call.to.as_str()),
        ("Caller", call.from.as_str()),
        ("Direction", "outbound-api"),
        ("From", call.from.as_str()),
        ("To", call.to.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn play(st: Shared, call: Call, script: Script) {
    let ended = |st: &Shared| st.lock().unwrap().ended.iter().any(|(s, _)| *s == call.sid);
    match script {
        Script::Silent => {}
        Script::Press(_, after) | Script::Silence(after) => {
            tokio::time::sleep(after).await;
            if ended(&st) {
                return;
            }
            let keys = match &script {
                Script::Press(digits, _) => format!("{digits}#"),
                _ => String::new(),
            };
            if let Some((digits, finished)) = call.gather_result(&keys) {
                let mut p = call_params(&call, "in-progress");
                p.push(("Digits".into(), digits));
                p.push(("FinishedOnKey".into(), finished));
                webhook(&st, &call.gather_action(), p, None).await;
            }
            webhook(
                &st,
                &call.status_callback,
                call_params(&call, "completed"),
                None,
            )
            .await;
        }
        Script::HangUp(after) => {
            tokio::time::sleep(after).await;
            if ended(&st) {
                return;
            }
            webhook(
                &st,
                &call.status_callback,
                call_params(&call, "completed"),
                None,
            )
            .await;
        }
        Script::NoAnswer(after) | Script::Ends(_, after) => {
            let status = match script {
                Script::Ends(status, _) => status,
                _ => "no-answer",
            };
            tokio::time::sleep(after).await;
            if ended(&st) {
                return;
            }
            webhook(&st, &call.status_callback, call_params(&call, status), None).await;
        }
    }
}

async fn generic(
    State(st): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (reply, delay) = {
        let mut g = st.lock().unwrap();
        g.generic.push(GenericRequest {
            path_and_query: uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (g.generic_reply.clone(), g.generic_delay)
    };
    tokio::time::sleep(delay).await;
    (StatusCode::from_u16(reply.0).unwrap(), reply.1).into_response()
}

impl Standin {
    pub fn start() -> Standin {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state: Shared = Arc::new(Mutex::new(Recorded {
            generic_reply: (200, "{\"ok\":true}".into()),
            ..Default::default()
        }));
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(messages),
            )
            .route("/2010-04-01/Accounts/{account}/Calls.json", post(calls))
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                post(update_call),
            )
            .route("/2010-04-01/Accounts/{account}", get(account))
            .route("/generic/send", post(generic).get(generic))
            .fallback(other)
            .with_state(state.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Standin {
            url: format!("http://{addr}"),
            state,
            rt,
        }
    }

    /// A `[twilio]` section pointing radmfa at this stand-in.
    pub fn twilio_toml(&self) -> String {
        format!(
            "\n[twilio]\naccount_sid = \"{ACCOUNT_SID}\"\nauth_token = \"{AUTH_TOKEN}\"\n\
             from = \"{SMS_FROM}\"\napi_url = \"{}\"\ntimeout_ms = 2000\n",
            self.url
        )
    }

    /// What the Account resource says from now on: its status and type.
    pub fn set_account(&self, status: &str, kind: &str) {
        self.state.lock().unwrap().account = Some((status.into(), kind.into()));
    }

    /// The status requests no route takes are answered with (a proxy's 502, say).
    pub fn set_other_status(&self, status: u16) {
        self.state.lock().unwrap().other_status = Some(status);
    }

    /// A header those requests are answered with, from now on.
    pub fn set_other_header(&self, name: &str, value: &str) {
        self.state.lock().unwrap().other_header = Some((name.into(), value.into()));
    }

    /// Requests no route took: (method, path and query, whether they carried credentials).
    pub fn other_requests(&self) -> Vec<(String, String, bool)> {
        self.state.lock().unwrap().others.clone()
    }

    pub fn sms(&self) -> Vec<Sms> {
        self.state.lock().unwrap().sms.clone()
    }

    /// Calls ended through the API: (CallSid, Status asked for).
    pub fn ended_calls(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().ended.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn callbacks(&self) -> Vec<CallbackResult> {
        self.state.lock().unwrap().callbacks.clone()
    }

    pub fn generic_requests(&self) -> Vec<GenericRequest> {
        self.state.lock().unwrap().generic.clone()
    }

    /// What the callee at `phone` does on the next calls.
    pub fn script(&self, phone: &str, script: Script) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(phone.into(), script);
    }

    /// Slows the Calls API's answer down (the call is placed, its SID not yet known).
    pub fn set_call_delay(&self, d: Duration) {
        self.state.lock().unwrap().call_delay = d;
    }

    /// Slows the Messages API down (to catch retransmits while the SMS is in flight).
    pub fn set_sms_delay(&self, d: Duration) {
        self.state.lock().unwrap().sms_delay = d;
    }

    /// Makes the Messages API fail like Twilio does (e.g. 503, 20429 "Too Many Requests").
    pub fn fail_sms(&self, failure: Option<(u16, u32, &str)>) {
        self.state.lock().unwrap().sms_failure = failure.map(|(s, c, t)| (s, c, t.to_string()));
    }

    /// Makes the Calls API fail like Twilio does (e.g. 400, 21215 for a number the
    /// account's geographic permissions do not allow).
    pub fn fail_calls(&self, failure: Option<(u16, u32, &str)>) {
        self.state.lock().unwrap().call_failure = failure.map(|(s, c, t)| (s, c, t.to_string()));
    }

    pub fn set_generic_reply(&self, status: u16, body: &str, delay: Duration) {
        let mut g = self.state.lock().unwrap();
        g.generic_reply = (status, body.into());
        g.generic_delay = delay;
    }

    /// Waits up to `within` for `n` SMS in total; returns them.
    pub fn wait_sms(&self, n: usize, within: Duration) -> Vec<Sms> {
        let end = Instant::now() + within;
        loop {
            let s = self.sms();
            if s.len() >= n || Instant::now() > end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Posts a callback to `url` with `params`; `signature` None signs it correctly.
    pub fn post_callback(
        &self,
        url: &str,
        params: Vec<(String, String)>,
        signature: Option<String>,
    ) -> CallbackResult {
        self.rt
            .block_on(webhook(&self.state, url, params, signature))
    }

    /// The parameters of Twilio's status callback for `sms` reaching `status` (`ErrorCode`
    /// with `undelivered` and `failed`).
    pub fn sms_status_params(
        sms: &Sms,
        status: &str,
        error_code: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = [
            ("AccountSid", ACCOUNT_SID),
            ("ApiVersion", "2010-04-01"),
            ("From", sms.from.as_str()),
            ("MessageSid", sms.sid.as_str()),
            ("MessageStatus", status),
            ("SmsSid", sms.sid.as_str()),
            ("SmsStatus", status),
            ("To", sms.to.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Some(code) = error_code {
            p.push(("ErrorCode".into(), code.into()));
        }
        p
    }

    /// Reports `sms`'s status to the StatusCallback it was sent with, signed as Twilio does.
    pub fn report_sms(&self, sms: &Sms, status: &str, error_code: Option<&str>) -> CallbackResult {
        let url = sms
            .status_callback
            .as_deref()
            .expect("the SMS was sent with a StatusCallback");
        self.post_callback(url, Self::sms_status_params(sms, status, error_code), None)
    }

    /// The parameters Twilio sends with a `<Gather>` result for `call` when the callee
    /// pressed `digits`, then `#`.
    pub fn gather_params(call: &Call, digits: &str) -> Vec<(String, String)> {
        let (digits, finished) = call
            .gather_result(&format!("{digits}#"))
            .expect("radmfa's gather posts every result");
        let mut p = call_params(call, "in-progress");
        p.push(("Digits".into(), digits));
        p.push(("FinishedOnKey".into(), finished));
        p
    }
}
