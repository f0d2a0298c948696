//! Twilio's callbacks: the voice call's keypad result and status, and an SMS's delivery
//! status. Order of checks: signature (else 403, nothing read), then the transaction of the
//! path's kind (else 404), then that the callback is about that transaction's call or
//! message (else 403), then, for calls, one compare-and-set from `pending`, so a replayed or
//! late callback cannot change a decided call (a fraud report marks it once, whatever it
//! was). An SMS's status changes nothing: it is logged and counted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::signature;
use crate::app::AppState;
use crate::delivery::phone::mask;
use crate::mfa::voice::{interpret_digits, outcome_twiml, CallDecision};
use crate::server::metrics::Metrics;
use crate::store::{AuditRecord, OobKind, OobStatus, OobTransaction, StoreError};

fn params(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The signature must verify over the URL Twilio called (our public URL + path + query) and
/// the parameters, and the request must name our account.
fn authenticate(
    app: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), StatusCode> {
    let config = app.config();
    let (Some(twilio), Some(cb)) = (&config.delivery.twilio, &config.delivery.callbacks) else {
        return Err(StatusCode::NOT_FOUND);
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path}", cb.public_url);
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = with_and_without_port(&url)
        .iter()
        .any(|u| signature::verify(twilio.auth_token.expose(), u, params, given))
        && param(params, "AccountSid") == Some(twilio.account_sid.as_str());
    if !ok {
        // Neither the parameters nor the path (it holds the transaction id) are logged.
        Metrics::inc(&app.metrics.callbacks_bad_signature);
        unsigned_refused();
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(())
}

/// How often refusals of unsigned (or wrongly signed) callbacks are logged: anyone who can
/// reach the listener can send them by the thousand, and a line each would flood the
/// journal until it drops radmfa's own audit lines (as `server::drop_log` keeps UDP floods
/// out of the log).
const REFUSAL_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Logs the first refusal, then at most one line per [`REFUSAL_LOG_INTERVAL`] with how
/// many came since.
fn unsigned_refused() {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    match *last {
        Some((at, n)) if now.duration_since(at) < REFUSAL_LOG_INTERVAL => {
            *last = Some((at, n + 1));
        }
        Some((_, n)) => {
            tracing::warn!(
                more = n,
                "provider callback refused: bad or missing signature (and `more` since the \
                 last such line)"
            );
            *last = Some((now, 0));
        }
        None => {
            tracing::warn!(
                "provider callback refused: bad or missing signature (further ones are \
                 counted, one line a minute)"
            );
            *last = Some((now, 0));
        }
    }
}

/// `url`, and the same URL with its port left out, or with the scheme's default port put
/// in: Twilio has signed callbacks both ways (its own request validators accept either),
/// so a public_url with an explicit port, or behind one on 443, must not refuse them all.
/// Only the port differs: whoever lacks the auth token can sign none of them.
fn with_and_without_port(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    // An IPv6 literal's colons are inside its brackets.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rfind(':').map(|i| host_end + i) {
        Some(colon) => out.push(format!("{scheme}://{}{tail}", &authority[..colon])),
        None => out.push(format!("{scheme}://{authority}:{default}{tail}")),
    }
    out
}

/// The checks every call callback starts with: [`signed`] for a voice transaction.
async fn signed_call(
    app: &AppState,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Vec<(String, String)>, OobTransaction), StatusCode> {
    signed(app, OobKind::Voice, id, uri, headers, body).await
}

/// The checks every callback starts with, in order: the signature over the form parameters,
/// then the transaction of `kind` the path names (one of another kind is unknown here),
/// then that the callback is about its call or message. Gives the parameters and the
/// transaction.
async fn signed(
    app: &AppState,
    kind: OobKind,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Vec<(String, String)>, OobTransaction), StatusCode> {
    // Requests without a signature of the right shape (base64 of an HMAC-SHA1, 20 bytes)
    // are refused before their body is parsed.
    if !headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(signature::well_formed)
    {
        Metrics::inc(&app.metrics.callbacks_unsigned);
        unsigned_refused();
        return Err(StatusCode::FORBIDDEN);
    }
    let params = params(body);
    authenticate(app, uri, headers, &params)?;
    if spliced(&params, acted_on(kind)) {
        Metrics::inc(&app.metrics.callbacks_spliced);
        tracing::warn!("provider callback refused: a repeated or re-split parameter");
        return Err(StatusCode::BAD_REQUEST);
    }
    let txn = oob_txn(app, kind, id).await?;
    if !same_delivery(&txn, &params) {
        Metrics::inc(&app.metrics.callbacks_other_delivery);
        tracing::warn!(
            user = txn.user.as_str(),
            "provider callback refused: signed, but about another {} than this login's",
            match kind {
                OobKind::Voice => "call",
                OobKind::Sms => "message",
            }
        );
        return Err(StatusCode::FORBIDDEN);
    }
    Ok((params, txn))
}

/// The parameters radmfa acts on in a callback of `kind` (see [`spliced`]).
fn acted_on(kind: OobKind) -> &'static [&'static str] {
    match kind {
        OobKind::Voice => &["Digits", "FinishedOnKey"],
        OobKind::Sms => &["MessageStatus", "ErrorCode"],
    }
}

/// Twilio's signature covers the parameters as name‖value with nothing between them, so
/// `CallerZip=12345&Digits=1&FinishedOnKey=#` (a decline) and
/// `CallerZip=12345Digits1&FinishedOnKey=#` sign the same, and the second reads as `#`
/// alone: an approval. Whoever can read and replace a callback (the plain-HTTP hop behind
/// the TLS proxy, a retry after a 503) could turn a decline or a fraud report into one.
/// The same goes for names (`CallerZip12345Digits=0`) and for the boundary between a name
/// and its value (`Dig=its0`). So the signed text is rebuilt as the signature sees it, and
/// every place a name radmfa acts on (`acted_on`) appears in it must be the start of the
/// parameter of exactly that name; a repeated name is refused too. Twilio sends neither.
fn spliced(params: &[(String, String)], acted_on: &[&str]) -> bool {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        return true;
    }
    // The signed parameters, and where each acted-on parameter's name starts in them.
    let mut signed = String::new();
    let mut genuine: Vec<usize> = Vec::new();
    for (k, v) in &sorted {
        if acted_on.contains(&k.as_str()) {
            genuine.push(signed.len());
        }
        signed.push_str(k);
        signed.push_str(v);
    }
    acted_on.iter().any(|n| {
        signed
            .match_indices(n)
            .any(|(at, _)| !genuine.contains(&at))
    })
}

/// Whether the callback is about the call placed (or the SMS sent) for `txn`: its CallSid
/// (MessageSid), once the provider's answer recorded it, else the number called (texted).
/// The signature proves only that Twilio sent the request; anyone who can place calls on
/// the same account could point a call of their own at this transaction's URL and press
/// the key.
fn same_delivery(txn: &OobTransaction, params: &[(String, String)]) -> bool {
    let sid_param = match txn.kind {
        OobKind::Voice => "CallSid",
        OobKind::Sms => "MessageSid",
    };
    match &txn.provider_ref {
        Some(sid) => param(params, sid_param) == Some(sid.as_str()),
        None => param(params, "To") == Some(txn.phone.as_str()),
    }
}

async fn oob_txn(app: &AppState, kind: OobKind, id: &str) -> Result<OobTransaction, StatusCode> {
    match app.store.oob(id).await {
        Ok(Some(t)) if t.kind == kind => Ok(t),
        Ok(_) => Err(StatusCode::NOT_FOUND),
        Err(e) => {
            tracing::error!(error = %e, "callback: reading the {} transaction", kind.as_str());
            Err(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

fn twiml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

pub async fn gather(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (params, txn) = match signed_call(&app, &id, &uri, &headers, &body).await {
        Ok(checked) => checked,
        Err(code) => return code.into_response(),
    };
    let config = app.config();
    let fraud_digits = config
        .delivery
        .voice
        .as_ref()
        .map(|v| v.fraud_digits.as_str())
        .unwrap_or("0");
    // `#` alone posts an empty (or no) Digits with FinishedOnKey="#": approve. A timeout
    // posts no finish key: no approval, whatever Digits says.
    let decision = interpret_digits(
        param(&params, "Digits").unwrap_or(""),
        param(&params, "FinishedOnKey"),
        fraud_digits,
    );
    let pressed = param(&params, "Digits").is_some_and(|d| !d.trim().is_empty())
        || param(&params, "FinishedOnKey").is_some_and(|k| !k.is_empty());
    // A key pressed after the call's lifetime approves nothing: the prompt's State has
    // expired with it, so the callee must not hear that the sign-in is approved.
    let late = decision == CallDecision::Approve && app.clock.now() >= txn.expires_at;
    let (status, reason) = match decision {
        CallDecision::Approve if late => (
            OobStatus::Failed,
            Some("approved on the call after its lifetime"),
        ),
        CallDecision::Approve => (OobStatus::Approved, None),
        CallDecision::Deny if !pressed => (OobStatus::Denied, Some("no key pressed on the call")),
        CallDecision::Deny => (OobStatus::Denied, Some("declined on the call")),
        // A fraud report stands even when the call was decided before it came (a held
        // login whose budget ran out while the phone rang on): someone else has the
        // password either way (see `settle_fraud`). In a task of its own: the listener
        // cuts a request off at its 10 s limit, and a store slow to answer (a PostgreSQL
        // failover) must not cancel the block half-way, or its fallback, with the report
        // never coming again.
        CallDecision::Fraud => {
            return match app.background.spawn(settle_fraud(app.clone(), txn)).await {
                Ok(FraudSettled::Recorded) => twiml(outcome_twiml(decision, true)),
                Ok(FraudSettled::NotBlocked) => {
                    twiml(crate::mfa::voice::fraud_not_recorded_twiml())
                }
                Ok(FraudSettled::StoreFailed) | Err(_) => {
                    StatusCode::SERVICE_UNAVAILABLE.into_response()
                }
            };
        }
    };
    let taken = match app.store.resolve_oob(&txn.id, status, reason).await {
        Ok(taken) => taken,
        Err(e) => {
            tracing::error!(error = %e, "callback: recording the call decision");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    if taken {
        tracing::info!(
            user = txn.user.as_str(),
            decision = status.as_str(),
            "call answered"
        );
    } else {
        tracing::info!(
            user = txn.user.as_str(),
            decision = status.as_str(),
            was = txn.status.as_str(),
            "call answered after it was decided; nothing changed"
        );
    }
    app.delivery.wake_waiters();
    // A call the login gave up for another method: told so, not "ended without approval".
    if !taken
        && txn
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with(crate::mfa::voice::ABANDONED_FOR))
    {
        return twiml(crate::mfa::voice::abandoned_twiml());
    }
    // The same keypress posted again (Twilio retries a request whose answer it did not
    // get) finds the call approved: the callee hears what the first answer said, not that
    // the sign-in ended without approval.
    let approved = taken || (status == OobStatus::Approved && txn.status == status);
    twiml(outcome_twiml(decision, approved && !late))
}

/// How a fraud report ended.
enum FraudSettled {
    /// The user blocked (or already blocked by this report) and the call marked fraud.
    Recorded,
    /// The block could not be written; the call marked fraud if the store took that.
    NotBlocked,
    /// The block was written but the call's status was not.
    StoreFailed,
}

/// The fraud report on `txn`: the block first, tried a few times, then the call marked
/// fraud. If the block still fails, the report is not lost in silence: Twilio does not send
/// a <Gather> action again, so the call is marked fraud if the store takes that (the login
/// it was about is refused, and the call's status callback cannot turn it into a decline),
/// the audit stream says the block is missing, and the callee is told to tell the
/// administrator. A repeat of this very report (the call already fraud) blocks nothing twice.
async fn settle_fraud(app: Arc<AppState>, txn: OobTransaction) -> FraudSettled {
    let reason = "fraud alert: the user reported the call as not theirs";
    if txn.status != OobStatus::Fraud {
        // Counted whether or not the block can be written: a report whose block failed
        // needs the alert most.
        Metrics::inc(&app.metrics.fraud_reports);
        if let Err(e) = block_for_fraud_patiently(&app, &txn).await {
            tracing::error!(error = %e, user = txn.user.as_str(), "blocking user after fraud alert");
            let why = format!("{reason}; the block could not be written");
            if let Err(e) = app
                .store
                .resolve_oob(&txn.id, OobStatus::Fraud, Some(&why))
                .await
            {
                tracing::error!(error = %e, "callback: recording the fraud report");
            }
            app.delivery.wake_waiters();
            tracing::warn!(
                target: "radmfa::audit",
                user = txn.user.as_str(),
                result = "fraud",
                "fraud alert: the user could NOT be blocked (store error); someone else has \
                 the password: disable the account in the directory"
            );
            return FraudSettled::NotBlocked;
        }
    }
    let settled = match app
        .store
        .resolve_oob(&txn.id, OobStatus::Fraud, Some(reason))
        .await
    {
        Ok(taken) => {
            tracing::info!(
                user = txn.user.as_str(),
                taken,
                "call answered: fraud report"
            );
            FraudSettled::Recorded
        }
        Err(e) => {
            tracing::error!(error = %e, "callback: recording the call decision");
            FraudSettled::StoreFailed
        }
    };
    app.delivery.wake_waiters();
    settled
}

/// How many times a fraud report's block is tried before the callback fails, the waits
/// between doubling from 250 ms: within the callback's 10 s limit, and across a passing
/// store error (a PostgreSQL failover, a busy SQLite writer). Each try is safe to repeat.
const FRAUD_BLOCK_TRIES: u32 = 4;

async fn block_for_fraud_patiently(app: &AppState, txn: &OobTransaction) -> Result<(), StoreError> {
    let mut wait = std::time::Duration::from_millis(250);
    let mut tries = 1;
    loop {
        match block_for_fraud(app, txn).await {
            Err(e) if tries < FRAUD_BLOCK_TRIES => {
                tracing::warn!(error = %e, user = txn.user.as_str(), tries, "blocking user after fraud alert; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                tries += 1;
            }
            done => return done,
        }
    }
}

/// Fraud: the user is blocked on every node until `radmfa user unblock`, their other
/// pending calls and SMS codes are cancelled, and the audit log
/// gets a `fraud` record even if no request is waiting on this call any more. Their
/// remembered second factors are forgotten too: someone else has the password, and after
/// the unblock every login should prove the second factor afresh.
///
/// The block failing is an error (the provider gets a 503); the rest is logged.
async fn block_for_fraud(app: &AppState, txn: &OobTransaction) -> Result<(), StoreError> {
    let now = app.clock.now();
    let reason = format!(
        "fraud alert from the call to {}; blocked until `radmfa user unblock`",
        mask(&txn.phone)
    );
    app.store.block_user(&txn.user, now, &reason).await?;
    // The user's other calls and codes in flight end too: an attacker with the password
    // may have started several logins, and the # pressed on the next call must not let
    // one of them in. This call is left pending: its caller marks it fraud next, and a
    // login held on it that read it failed in between would answer "not answered in
    // time". Part of the block: if it fails, the block is tried again (see its caller).
    let cancelled = app
        .store
        .cancel_oob(
            &txn.user,
            Some(&txn.id),
            &format!("{}fraud alert on another call", crate::store::OOB_CANCELLED),
        )
        .await?;
    // And they stop ringing (not waited for: the caller hears the outcome at once).
    app.delivery.hang_up_later(
        &app.background,
        txn.user.clone(),
        cancelled.calls,
        "by a fraud report",
    );
    if let Err(e) = app.store.forget_logins(&txn.user, now).await {
        tracing::error!(error = %e, user = txn.user.as_str(), "forgetting remembered logins after fraud alert");
    }
    let rec = AuditRecord {
        time: now,
        user: txn.user.clone(),
        phone: Some(txn.phone.clone()),
        mode: "voice".into(),
        result: "fraud".into(),
        reason: Some(reason),
        server_name: app.config().server.name.clone(),
        // The login that placed the call: during a fatigue attack, with several calls in
        // flight, the attacker's station and NAS are what the admin needs from this record.
        client_ip: txn.origin.client_ip.clone(),
        nas_ip: txn.origin.nas_ip.clone(),
        nas_identifier: txn.origin.nas_identifier.clone(),
        nas_name: Some(txn.nas.clone()),
        ..Default::default()
    };
    if let Err(e) = app.store.append_audit(&rec).await {
        crate::pipeline::audit::count_lost(app);
        tracing::error!(error = %e, "writing the fraud audit record");
    }
    tracing::warn!(
        target: "radmfa::audit",
        user = txn.user.as_str(),
        result = "fraud",
        client_ip = rec.client_ip.as_deref().unwrap_or(""),
        nas = txn.nas.as_str(),
        nas_identifier = rec.nas_identifier.as_deref().unwrap_or(""),
        "fraud alert: user blocked"
    );
    Ok(())
}

pub async fn status(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (params, txn) = match signed_call(&app, &id, &uri, &headers, &body).await {
        Ok(checked) => checked,
        Err(code) => return code.into_response(),
    };
    let call_status = param(&params, "CallStatus").unwrap_or("");
    let outcome = match call_status {
        // Ended after being answered: if no key decided it by now, it is not approved.
        "completed" => Some((OobStatus::Denied, "call ended without approval".to_string())),
        "busy" | "no-answer" | "failed" | "canceled" => {
            Some((OobStatus::Failed, format!("call {call_status}")))
        }
        _ => None,
    };
    if let Some((status, reason)) = outcome {
        if let Err(e) = app.store.resolve_oob(&txn.id, status, Some(&reason)).await {
            tracing::error!(error = %e, "callback: recording the call status");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        app.delivery.wake_waiters();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// An SMS's delivery status (`MessageStatus`), posted to the StatusCallback given when it was
/// sent. `undelivered` and `failed` (the provider took the message, the phone never got it)
/// are logged with Twilio's `ErrorCode` and counted; nothing else is done: the login's prompt
/// stays as it is (a code that arrives late still counts, and a resend is the user's to
/// ask for). Every other status is taken and ignored.
pub async fn sms_status(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (params, txn) = match signed(&app, OobKind::Sms, &id, &uri, &headers, &body).await {
        Ok(checked) => checked,
        Err(code) => return code.into_response(),
    };
    let status = param(&params, "MessageStatus").unwrap_or("");
    if matches!(status, "undelivered" | "failed") {
        // Twilio's codes are numbers; anything else is not copied into the log.
        let code = param(&params, "ErrorCode")
            .filter(|c| !c.is_empty() && c.len() <= 8 && c.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or("none");
        tracing::warn!(
            user = txn.user.as_str(),
            phone = %mask(&txn.phone),
            status,
            error_code = code,
            meaning = sms_error_meaning(code),
            "SMS not delivered: the provider took it, but the phone never got the code"
        );
        Metrics::inc(&app.metrics.sms_undelivered);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// What Twilio's common delivery error codes mean, in a few words, for the log line.
fn sms_error_meaning(code: &str) -> &'static str {
    match code {
        "30003" => "unreachable handset (switched off, out of coverage)",
        "30004" => "message blocked (by the recipient or their carrier)",
        "30005" => "unknown number (it does not exist or is no longer in service)",
        "30006" => "landline or unreachable carrier (the number cannot take texts)",
        "30007" => "filtered by the carrier (spam filtering)",
        "30008" => "unknown error (the carrier gave no reason)",
        _ => "see https://www.twilio.com/docs/api/errors",
    }
}

#[cfg(test)]
mod tests {
    use super::with_and_without_port;

    #[test]
    fn sms_status_parameters_are_not_resplit() {
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let sms = super::acted_on(crate::store::OobKind::Sms);
        let genuine = p(&[("ErrorCode", "30003"), ("MessageStatus", "undelivered")]);
        assert!(!super::spliced(&genuine, sms));
        // `MessageStatus=delivered` with "undelivered" spliced into another value.
        let resplit = p(&[
            ("From", "+1555MessageStatusundelivered"),
            ("MessageStatus", "x"),
        ]);
        assert!(super::spliced(&resplit, sms));
    }

    #[test]
    fn a_url_is_tried_with_and_without_its_port() {
        assert_eq!(
            with_and_without_port("https://h.example.org:8443/twilio/voice/x?a=1"),
            [
                "https://h.example.org:8443/twilio/voice/x?a=1",
                "https://h.example.org/twilio/voice/x?a=1"
            ]
        );
        assert_eq!(
            with_and_without_port("https://h.example.org/t"),
            ["https://h.example.org/t", "https://h.example.org:443/t"]
        );
        assert_eq!(
            with_and_without_port("http://[2001:db8::1]/t"),
            ["http://[2001:db8::1]/t", "http://[2001:db8::1]:80/t"]
        );
        assert_eq!(
            with_and_without_port("http://[2001:db8::1]:8080/t"),
            ["http://[2001:db8::1]:8080/t", "http://[2001:db8::1]/t"]
        );
    }
}
