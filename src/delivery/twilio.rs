//! Twilio: the Messages API for SMS and the Calls API for the approval call, spoken with the
//! real HTTP client against `api_url` (Twilio itself in production, the stand-in in tests).
//! Both are form-encoded POSTs with HTTP basic auth (Account SID : auth token) that answer
//! 201 with the new resource as JSON, or an error object `{code, message, status}`.

use async_trait::async_trait;

use super::http::snippet;
use super::{http_client, CallRequest, CodeSender, ProviderError, VoiceCaller};
use crate::config::delivery::TwilioConfig;
use crate::secret::Secret;

pub struct TwilioSms {
    cfg: TwilioConfig,
    client: Result<reqwest::Client, String>,
}

pub struct TwilioVoice {
    cfg: TwilioConfig,
    caller_id: String,
    ring_timeout_secs: u64,
    client: Result<reqwest::Client, String>,
}

impl TwilioSms {
    pub fn new(cfg: TwilioConfig) -> Self {
        let client = http_client(cfg.timeout);
        TwilioSms { cfg, client }
    }
}

impl TwilioVoice {
    pub fn new(cfg: TwilioConfig, caller_id: String, ring_timeout_secs: u64) -> Self {
        let client = http_client(cfg.timeout);
        TwilioVoice {
            cfg,
            caller_id,
            ring_timeout_secs,
            client,
        }
    }
}

/// POSTs `form` to `/2010-04-01/Accounts/{sid}/{resource}` and returns the new `sid`.
async fn create(
    provider: &'static str,
    cfg: &TwilioConfig,
    client: &Result<reqwest::Client, String>,
    resource: &str,
    form: &[(&str, &str)],
    also_hidden: &[&str],
) -> Result<Option<String>, ProviderError> {
    let json = post(provider, cfg, client, resource, form, also_hidden).await?;
    let sid = json.get("sid").and_then(|s| s.as_str()).map(str::to_string);
    if sid.is_none() {
        return Err(ProviderError::NotAccepted {
            provider,
            detail: "no sid in the response".into(),
        });
    }
    if json.get("status").and_then(|s| s.as_str()) == Some("failed") {
        return Err(ProviderError::NotAccepted {
            provider,
            detail: "status failed".into(),
        });
    }
    Ok(sid)
}

/// POSTs `form` to `/2010-04-01/Accounts/{sid}/{resource}`; the JSON of a 2xx answer, or
/// Twilio's error as a [`ProviderError`].
async fn post(
    provider: &'static str,
    cfg: &TwilioConfig,
    client: &Result<reqwest::Client, String>,
    resource: &str,
    form: &[(&str, &str)],
    also_hidden: &[&str],
) -> Result<serde_json::Value, ProviderError> {
    let client = client
        .as_ref()
        .map_err(|e| ProviderError::Setup(e.clone()))?;
    let url = format!(
        "{}/2010-04-01/Accounts/{}/{resource}",
        cfg.api_url, cfg.account_sid
    );
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let ms = cfg.timeout.as_millis() as u64;
    let resp = client
        .post(&url)
        .basic_auth(
            &cfg.account_sid,
            cfg.auth_token.expose_str().map(str::to_string),
        )
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(provider, ms, e))?;
    // What was sent (the code, the text) is blanked from an echoed error.
    let sent: Vec<String> = form
        .iter()
        .filter(|(name, _)| *name == "Body")
        .map(|(_, v)| v.to_string())
        .chain(also_hidden.iter().map(|v| v.to_string()))
        .collect();
    answer(provider, cfg, ms, resp, sent).await
}

/// The JSON of a 2xx answer, or Twilio's error as a [`ProviderError`], with `sent` and the
/// credentials blanked from its message.
async fn answer(
    provider: &'static str,
    cfg: &TwilioConfig,
    ms: u64,
    resp: reqwest::Response,
    sent: Vec<String>,
) -> Result<serde_json::Value, ProviderError> {
    let status = resp.status().as_u16();
    let body = super::read_body(resp, provider, ms).await;
    let json: serde_json::Value = serde_json::from_slice(&body.bytes).unwrap_or_default();
    if !(200..300).contains(&status) {
        // Twilio's error object; only its code and message go into the audit reason. Twilio
        // does not echo the request, but `api_url` may name a compatible gateway or a proxy
        // that does: what was sent (the code, the token) is blanked from the message.
        let token = cfg.auth_token.expose_str().unwrap_or_default();
        let basic = super::basic_credential(&cfg.account_sid, token);
        let hidden: Vec<String> = sent
            .into_iter()
            .chain([token.to_string(), basic])
            // An egress proxy that echoes the Proxy-Authorization it was sent (the HTTP
            // SMS gateway's own fix missed this provider: review).
            .chain(super::http::env_proxy_credentials())
            .collect();
        let detail = match (
            json.get("code"),
            json.get("message").and_then(|m| m.as_str()),
        ) {
            // The code is Twilio's number; a look-alike gateway could echo anything there.
            (Some(code), Some(msg)) => format!(
                "error {}: {}",
                snippet(&code.to_string(), &hidden),
                snippet(msg, &hidden)
            ),
            (_, Some(msg)) => snippet(msg, &hidden),
            // Or why nothing could be read of it.
            _ => Some(body.detail(|_, _| String::new()))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "no error details".into()),
        };
        // Only a refusal (4xx) can be the number's: a 5xx is Twilio failing.
        let refused_number = json
            .get("code")
            .and_then(serde_json::Value::as_u64)
            .filter(|_| (400..500).contains(&status))
            .and_then(refused_number);
        return Err(ProviderError::Status {
            provider,
            status,
            detail,
            refused_number,
        });
    }
    Ok(json)
}

/// What `config check --connect` learns of the account, without sending anything: Twilio's
/// Account resource (`GET /2010-04-01/Accounts/{sid}.json`), which answers only to the right
/// SID and auth token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `active`, `suspended` or `closed`: only an active account texts and calls.
    pub status: String,
    /// `Trial` or `Full`: a trial account reaches only the numbers verified in its console.
    pub kind: String,
}

/// Reads the account with the configured credentials (see [`Account`]).
pub async fn account(cfg: &TwilioConfig) -> Result<Account, ProviderError> {
    let provider = "twilio";
    let client = http_client(cfg.timeout).map_err(ProviderError::Setup)?;
    let ms = cfg.timeout.as_millis() as u64;
    let url = format!(
        "{}/2010-04-01/Accounts/{}.json",
        cfg.api_url, cfg.account_sid
    );
    let resp = client
        .get(&url)
        .basic_auth(
            &cfg.account_sid,
            cfg.auth_token.expose_str().map(str::to_string),
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(provider, ms, e))?;
    let json = answer(provider, cfg, ms, resp, Vec::new()).await?;
    let field = |name: &str| {
        json.get(name)
            .and_then(|v| v.as_str())
            .map(|v| snippet(v, &[]))
            .unwrap_or_default()
    };
    Ok(Account {
        status: field("status"),
        kind: field("type"),
    })
}

/// Twilio's error codes for a number it will not text or call, whatever the time: what each
/// means, for the audit reason and the log. Trying again never helps, so the user is told
/// to have the number on record checked instead (the numbers' own error pages at
/// https://www.twilio.com/docs/api/errors/NNNNN say more). The geographic permissions
/// (21408, 21215) are the account's, but the answer is the same: this number, as it is, is
/// not reached until someone acts.
fn refused_number(code: u64) -> Option<&'static str> {
    Some(match code {
        21211 | 21217 => "not a valid phone number",
        21214 => "the number cannot be reached by a call",
        21215 => {
            "the account's geographic permissions do not allow calls to this number (Twilio \
             console: voice geographic permissions)"
        }
        13224 => "Twilio does not support calling this number, or it is invalid",
        21408 => {
            "the account's geographic permissions do not allow texts to this country (Twilio \
             console: messaging geographic permissions)"
        }
        21610 => {
            "the recipient opted out of texts from this sender (replied STOP; texting START \
             to it opts back in)"
        }
        21612 => "no route for texts to this number from this sender",
        21614 => "not a mobile number (a landline, or an invalid number)",
        21635 => "a landline, which cannot take texts",
        _ => return None,
    })
}

#[async_trait]
impl CodeSender for TwilioSms {
    async fn send_sms(
        &self,
        to: &str,
        text: &Secret,
        code: &Secret,
    ) -> Result<Option<String>, ProviderError> {
        self.send_sms_reporting(to, text, code, None).await
    }

    /// With a `status_callback`, Twilio POSTs the message's status changes there (signed as
    /// the call callbacks are): `MessageStatus` and, for `undelivered` or `failed`, the
    /// `ErrorCode` that says why the code never reached the phone.
    async fn send_sms_reporting(
        &self,
        to: &str,
        text: &Secret,
        code: &Secret,
        status_callback: Option<&str>,
    ) -> Result<Option<String>, ProviderError> {
        let body = text.expose_str().unwrap_or_default();
        let code = code.expose_str().unwrap_or_default();
        let mut form = vec![("To", to), ("From", self.cfg.from.as_str()), ("Body", body)];
        if let Some(url) = status_callback {
            form.push(("StatusCallback", url));
        }
        create(
            "twilio sms",
            &self.cfg,
            &self.client,
            "Messages.json",
            &form,
            &[code],
        )
        .await
    }
}

#[async_trait]
impl VoiceCaller for TwilioVoice {
    async fn place_call(&self, call: &CallRequest) -> Result<Option<String>, ProviderError> {
        let ring = self.ring_timeout_secs.to_string();
        create(
            "twilio voice",
            &self.cfg,
            &self.client,
            "Calls.json",
            &[
                ("To", call.to.as_str()),
                ("From", self.caller_id.as_str()),
                ("Twiml", call.twiml.as_str()),
                ("StatusCallback", call.status_callback.as_str()),
                ("StatusCallbackMethod", "POST"),
                ("Timeout", ring.as_str()),
            ],
            &[],
        )
        .await
    }

    /// Twilio's "modify a live call": `Status=completed` hangs up a call in progress, and a
    /// queued or ringing one too (`canceled` would leave an answered call running).
    async fn end_call(&self, provider_ref: &str) -> Result<(), ProviderError> {
        // A call SID is "CA" and 32 hex digits; anything else is not put into the path.
        if !(provider_ref.len() == 34
            && provider_ref.starts_with("CA")
            && provider_ref[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ProviderError::Setup(format!(
                "twilio voice: {provider_ref:?} is not a call SID"
            )));
        }
        post(
            "twilio voice",
            &self.cfg,
            &self.client,
            &format!("Calls/{provider_ref}.json"),
            &[("Status", "completed")],
            &[],
        )
        .await
        .map(|_| ())
    }
}
