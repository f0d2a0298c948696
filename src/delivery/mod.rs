//! Delivery providers: who sends the SMS and places the call. `CodeSender` and `VoiceCaller`
//! are the boundary; `HttpSms` (any HTTP API, templated) and Twilio (`TwilioSms`,
//! `TwilioVoice`) implement them with the real HTTP client, whose base URLs are configurable
//! so tests point them at a local stand-in. Every call has a timeout below the NAS retransmit
//! interval. Nothing here logs a message body: it holds the code.

pub mod http;
pub mod phone;
pub mod twilio;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::config::delivery::{DeliveryConfig, SmsProvider};
use crate::secret::Secret;

/// A provider could not deliver. The message goes into the audit reason, so it never holds
/// the code or the provider's credentials.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider}: no answer within {ms} ms")]
    Timeout {
        provider: &'static str,
        ms: u64,
        /// False when the time ran out still connecting: the request never left.
        connected: bool,
    },
    #[error("{provider}: {detail}")]
    Transport {
        provider: &'static str,
        detail: String,
        /// False when the connection was refused for a reason that stays until someone
        /// acts: the provider's (or a TLS-inspecting proxy's) certificate not trusted.
        outage: bool,
        /// False when no connection to the provider (or through the proxy to it) was made:
        /// refused, a name that did not resolve, a TLS handshake or a proxy's tunnel that
        /// failed. The request never left. True for a connection lost after it was made (the
        /// request may have been taken) and for an answer that could not be read.
        connected: bool,
    },
    #[error("{provider}: HTTP {status}: {detail}")]
    Status {
        provider: &'static str,
        status: u16,
        detail: String,
        /// The provider refused the number itself, in words (Twilio's 21614: "not a mobile
        /// number"): it refuses it again on every try until the number on record changes,
        /// or an admin changes the account's settings, so the user is not told to try later.
        refused_number: Option<&'static str>,
    },
    #[error("{provider}: the response does not show success: {detail}")]
    NotAccepted {
        provider: &'static str,
        detail: String,
    },
    /// radmfa's side: missing configuration, or a request that could not be built.
    #[error("{0}")]
    Setup(String),
}

/// What kind of failure a [`ProviderError`] is, as `radmfa_provider_failures_total`'s
/// `kind` label says: a rotated auth token (every send refused) must not look like a few
/// numbers refused, or like the provider's outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 401 or 403: our credentials refused, every send until someone acts.
    Auth,
    /// Another 4xx: this message or its number refused.
    Refused,
    /// 429: the provider's rate limit.
    RateLimited,
    /// A 5xx: the provider failing.
    Server,
    /// No answer within `timeout_ms`.
    Timeout,
    /// No connection made (refused, DNS, TLS, a proxy), or one lost.
    Connection,
    /// An answer that does not say: a 2xx without success, a 3xx.
    Unclear,
    /// radmfa's side: the request could not be built, or it went to a URL the provider
    /// does not serve (404, 405).
    Setup,
}

impl FailureKind {
    pub const ALL: [FailureKind; 8] = [
        FailureKind::Auth,
        FailureKind::Refused,
        FailureKind::RateLimited,
        FailureKind::Server,
        FailureKind::Timeout,
        FailureKind::Connection,
        FailureKind::Unclear,
        FailureKind::Setup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Auth => "auth",
            FailureKind::Refused => "refused",
            FailureKind::RateLimited => "rate_limited",
            FailureKind::Server => "server",
            FailureKind::Timeout => "timeout",
            FailureKind::Connection => "connection",
            FailureKind::Unclear => "unclear",
            FailureKind::Setup => "setup",
        }
    }
}

impl ProviderError {
    pub fn kind(&self) -> FailureKind {
        match self {
            ProviderError::Timeout { .. } => FailureKind::Timeout,
            ProviderError::Transport { .. } => FailureKind::Connection,
            ProviderError::Status { status, .. } => match status {
                401 | 403 => FailureKind::Auth,
                // No such resource or method: the URL is wrong (an api_url path prefix, the
                // account SID, a gateway's url), for every message, not this one refused.
                404 | 405 => FailureKind::Setup,
                408 => FailureKind::Timeout,
                429 => FailureKind::RateLimited,
                400..=499 => FailureKind::Refused,
                500..=599 => FailureKind::Server,
                _ => FailureKind::Unclear,
            },
            ProviderError::NotAccepted { .. } => FailureKind::Unclear,
            ProviderError::Setup(_) => FailureKind::Setup,
        }
    }

    /// The provider is down right now — no answer, a server error — as opposed to a refusal
    /// of this one message (an invalid or landline number, an opted-out recipient: HTTP
    /// 400/404, a body without the success text), its rate limit (429) or our credentials
    /// refused (401/403). Only an outage may fail open (`provider_failure = "allow"`): a
    /// refusal is the same every time for that number, and a caller could choose it; a
    /// caller with the password can bring the rate limit on too, with a burst of logins,
    /// and turn it into a login without the second factor; and refused credentials (a
    /// rotated auth token, a suspended account) stay refused until someone acts, so failing
    /// open on them would quietly turn the second factor off for days.
    pub fn is_outage(&self) -> bool {
        match self {
            ProviderError::Timeout { .. } => true,
            ProviderError::Transport { outage, .. } => *outage,
            ProviderError::Status { status, .. } => *status >= 500,
            ProviderError::NotAccepted { .. } | ProviderError::Setup(_) => false,
        }
    }

    /// The provider surely did not take the message (nor place the call), so it cost
    /// nothing and counts against no send limit: the request never left (it could not be
    /// built, or no connection was made), or the provider answered with a 4xx, which says
    /// it refused the request (an invalid number, our credentials refused, its rate limit).
    /// Anything unclear may have gone out and been paid for — a timeout or a connection lost
    /// after the request was sent, a 5xx (a gateway may fail after handing the message on),
    /// a 3xx (303 is how some APIs answer a POST they acted on), a 2xx whose body does not
    /// show success, an answer that could not be read — and stays counted: the limits are
    /// there against toll fraud and SMS pumping, which such answers must not let through.
    pub fn surely_not_sent(&self) -> bool {
        match self {
            ProviderError::Timeout { connected, .. }
            | ProviderError::Transport { connected, .. } => !connected,
            ProviderError::Status { status, .. } => (400..500).contains(status),
            ProviderError::NotAccepted { .. } => false,
            ProviderError::Setup(_) => true,
        }
    }

    /// The request left, and no answer says the provider refused it: it may have taken the
    /// message (or placed the call) and be slow to say so, or the answer was lost. A code
    /// sent so may still arrive.
    pub fn maybe_sent(&self) -> bool {
        matches!(
            self,
            ProviderError::Timeout {
                connected: true,
                ..
            } | ProviderError::Transport {
                connected: true,
                ..
            }
        )
    }

    /// Why the provider refuses the number itself ([`ProviderError::Status`]'s
    /// `refused_number`), if that is what it said.
    pub fn refused_number(&self) -> Option<&'static str> {
        match self {
            ProviderError::Status { refused_number, .. } => *refused_number,
            _ => None,
        }
    }

    pub(crate) fn from_reqwest(provider: &'static str, timeout_ms: u64, e: reqwest::Error) -> Self {
        if e.is_builder() {
            // The request could not even be made (a URL or header the configuration, or a
            // value filled into it, made invalid): radmfa's fault, not the provider's
            // outage, so never a reason to fail open.
            ProviderError::Setup(format!(
                "{provider}: the request could not be built: {}",
                e.without_url()
            ))
        } else if e.is_timeout() {
            ProviderError::Timeout {
                provider,
                ms: timeout_ms,
                // The connect timeout: reqwest marks it as a connect error too.
                connected: !e.is_connect(),
            }
        } else {
            // Why, from the error's causes: reqwest's own message for any failed connection
            // is "error sending request", the same for a provider down and a certificate
            // refused. A certificate is not an outage: it stays refused, and failing open on
            // it (`provider_failure = "allow"`) would turn the second factor off for days.
            let connected = !e.is_connect();
            let mut causes: Vec<String> = Vec::new();
            let mut lasting = false;
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                // Any TLS failure (a certificate not trusted, a handshake refused by an
                // inspecting proxy) is a setting, not the provider being down.
                lasting |= tls_error_in(s).is_some();
                let text = without_urls(&s.to_string());
                lasting |= lasting_failure(&text);
                if !causes.iter().any(|c| c.contains(&text)) {
                    causes.push(text);
                }
                source = s.source();
            }
            let mut detail = e.without_url().to_string();
            for c in causes {
                detail.push_str(": ");
                detail.push_str(&c);
            }
            // Without the URL: a templated URL may carry the code.
            ProviderError::Transport {
                provider,
                detail,
                outage: !lasting,
                // reqwest says "connect" for anything that failed in its connector (DNS,
                // TCP, TLS, a proxy's CONNECT), before a byte of the request was written.
                connected,
            }
        }
    }
}

/// Whether a cause, by its words, stays until someone acts: an egress proxy refusing the
/// tunnel (403) or asking for credentials (407), or a provider host name that does not
/// exist (a typo; "temporary failure in name resolution" is a DNS outage and not this).
/// By text: hyper-util and the system resolver give no type to match.
fn lasting_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("proxy authorization required")
        || t.contains("tunnel error: unsuccessful")
        || t.contains("name or service not known")
        || t.contains("no address associated with hostname")
}

/// The rustls error `e` is or carries. TLS errors come wrapped in io::Errors, nested (hyper's
/// around tokio-rustls's), whose `source` skips their payload: unwrapped by hand.
fn tls_error_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut e = e;
    for _ in 0..8 {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
        e = inner;
    }
    None
}

/// `text` with every word that holds "://" (a URL, which may carry the code or a proxy's
/// password) left out.
fn without_urls(text: &str) -> String {
    text.split(' ')
        .map(|w| if w.contains("://") { "…" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What an `Authorization: Basic` header carries for `user` and `password`: blanked from
/// provider errors, where a gateway or proxy echoing the request would show it.
pub(crate) fn basic_credential(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Most of a provider's answer read: an error object or a message id is a few hundred bytes,
/// and a broken gateway or proxy streaming more must not be held in memory for every send.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A provider's answer, as much of it as was read.
pub(crate) struct Body {
    /// Its first [`MAX_RESPONSE_BYTES`] at most (the rest is not read).
    pub bytes: Vec<u8>,
    /// Why the body ends early, when it does (cut off, slower than the timeout): what was
    /// read is kept, so a cut-off error still shows its start.
    pub unread: Option<ProviderError>,
}

impl Body {
    /// For an error's detail: the body as shown by `show`, or, when nothing of it was read,
    /// why. A body cut off in transport loses its last word: it may be the start of a key
    /// echoed back, which masking, of whole values, would not find (review).
    /// `show` is told whether the text was cut off, so that it can hide the start of a
    /// value the cut left at its end.
    pub fn detail(&self, show: impl FnOnce(&str, bool) -> String) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let Some(e) = &self.unread else {
            return show(&text, false);
        };
        let kept = text
            .trim_end()
            .rsplit_once(char::is_whitespace)
            .map_or("", |(k, _)| k);
        let shown = show(kept, true);
        if shown.trim().is_empty() {
            // Without the provider's name, which the reason gives already.
            let why = e.to_string();
            let why = why.split_once(": ").map_or(why.as_str(), |(_, w)| w);
            format!("the answer's body could not be read ({why})")
        } else {
            format!("{shown} (the rest was cut off)")
        }
    }
}

/// The response body (see [`Body`]). When it cannot be read in full, the status decides: a
/// 2xx whose body was lost was taken by the provider, and a refusal stays one; as an error,
/// either was an outage, which `provider_failure = "allow"` fails open on (red team: a 200
/// with a short body let the password in alone).
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    provider: &'static str,
    timeout_ms: u64,
) -> Body {
    let status = resp.status().as_u16();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_RESPONSE_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => {
                let e = ProviderError::from_reqwest(provider, timeout_ms, e);
                tracing::info!(provider, status, error = %e, "the provider's answer had a body that could not be read; its status decides");
                return Body {
                    bytes,
                    unread: Some(e),
                };
            }
        }
    }
    Body {
        bytes,
        unread: None,
    }
}

/// Sends a text message. `text` holds the code, hence `Secret`.
#[async_trait]
pub trait CodeSender: Send + Sync + 'static {
    /// Returns the provider's message id, if it gives one.
    async fn send_sms(
        &self,
        to: &str,
        text: &Secret,
        code: &Secret,
    ) -> Result<Option<String>, ProviderError>;

    /// [`send_sms`](Self::send_sms), asking the provider to report the message's fate
    /// (delivered, undelivered, failed) to `status_callback`, where it can. A provider
    /// that cannot (the generic HTTP gateway) sends it as `send_sms` does.
    async fn send_sms_reporting(
        &self,
        to: &str,
        text: &Secret,
        code: &Secret,
        status_callback: Option<&str>,
    ) -> Result<Option<String>, ProviderError> {
        let _ = status_callback;
        self.send_sms(to, text, code).await
    }
}

/// What a call needs: the number, the script, where the provider reports back.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub to: String,
    pub twiml: String,
    /// Called when the call ends (answered or not), so an unanswered call denies at once.
    pub status_callback: String,
}

#[async_trait]
pub trait VoiceCaller: Send + Sync + 'static {
    /// Places the call; returns the provider's call id.
    async fn place_call(&self, call: &CallRequest) -> Result<Option<String>, ProviderError>;
    /// Hangs up the call `provider_ref` (ringing or answered), for a login that no longer
    /// waits on it: the user chose another method at the prompt.
    async fn end_call(&self, provider_ref: &str) -> Result<(), ProviderError>;
}

/// The providers built from the config, plus the in-process wake-up for requests waiting on
/// a call (the callback handler on this node rings it; other nodes' requests poll the store).
pub struct Delivery {
    pub sms: Option<Arc<dyn CodeSender>>,
    pub voice: Option<Arc<dyn VoiceCaller>>,
    pub wake: Notify,
}

impl Delivery {
    /// Hangs up `calls` (provider references) on `tasks`, not waited for: the request or
    /// callback that cancelled them answers at once. A failure is logged with `why` (what
    /// cancelled them); the calls approve nothing either way.
    pub fn hang_up_later(
        &self,
        tasks: &tokio_util::task::TaskTracker,
        user: String,
        calls: Vec<String>,
        why: &'static str,
    ) {
        let Some(voice) = self.voice.clone().filter(|_| !calls.is_empty()) else {
            return;
        };
        tasks.spawn(async move {
            for sid in calls {
                if let Err(e) = voice.end_call(&sid).await {
                    tracing::warn!(user, error = %e, "a call cancelled {why} could not be hung up");
                }
            }
        });
    }

    pub fn from_config(cfg: &DeliveryConfig) -> Delivery {
        let sms: Option<Arc<dyn CodeSender>> = match (&cfg.sms, &cfg.twilio, &cfg.http_sms) {
            (Some(s), Some(t), _) if s.provider == SmsProvider::Twilio => {
                Some(Arc::new(twilio::TwilioSms::new(t.clone())))
            }
            (Some(s), _, Some(h)) if s.provider == SmsProvider::Http => {
                Some(Arc::new(http::HttpSms::new(h.clone())))
            }
            _ => None,
        };
        let voice: Option<Arc<dyn VoiceCaller>> = match (&cfg.voice, &cfg.twilio) {
            (Some(v), Some(t)) => Some(Arc::new(twilio::TwilioVoice::new(
                t.clone(),
                v.caller_id.clone(),
                v.ring_timeout.as_secs(),
            ))),
            _ => None,
        };
        Delivery {
            sms,
            voice,
            wake: Notify::new(),
        }
    }

    /// Tell requests waiting on a call on this node to look at the store now.
    pub fn wake_waiters(&self) {
        self.wake.notify_waiters();
    }
}

/// The proxy variables set in the environment, by name. Provider requests go through the
/// proxy they name (reqwest reads them as curl does), so a host whose egress is a proxy
/// needs only `Environment=HTTPS_PROXY=…` in the unit. Names only: a value may hold the
/// proxy's password.
pub fn proxy_variables() -> Vec<&'static str> {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ]
    .into_iter()
    .filter(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
    .collect()
}

/// The HTTP client every provider uses: rustls, a total timeout, no redirects (a redirect
/// would resend the code somewhere else), the environment's proxy (`proxy_variables`).
/// Trusted: the built-in Mozilla roots, and the system's store (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`, else OpenSSL's locations): an on-premises gateway under a private CA, or
/// a TLS-inspecting egress proxy, was "UnknownIssuer" with no way to trust its CA.
pub(crate) fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    // A certificate that cannot be read, or that rustls cannot use as a root, is left out:
    // given to reqwest, one such would fail the client's build, and every send with it.
    let mut usable = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    // Said, as [ldap] says it: an SSL_CERT_FILE naming no file was ignored in silence,
    // and every send then failed "UnknownIssuer" (review).
    for e in &found.errors {
        tracing::warn!(error = %e, "SMS/call providers: system CA certificates that could not be read are left out");
    }
    for der in found.certs {
        if usable.add(der.clone()).is_ok() {
            if let Ok(cert) = reqwest::Certificate::from_der(&der) {
                builder = builder.add_root_certificate(cert);
            }
        }
    }
    builder
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("radmfa/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lasting_connection_failures_are_told_from_outages() {
        for lasting in [
            "tunnel error: proxy authorization required",
            "tunnel error: unsuccessful",
            "dns error: failed to lookup address information: Name or service not known",
            "failed to lookup address information: No address associated with hostname",
        ] {
            assert!(super::lasting_failure(lasting), "{lasting}");
        }
        for outage in [
            "tcp connect error: Connection refused (os error 111)",
            "dns error: failed to lookup address information: Temporary failure in name resolution",
            "connection closed before message completed",
        ] {
            assert!(!super::lasting_failure(outage), "{outage}");
        }
    }

    use super::*;

    /// A 404 or 405 is the URL, for every message (a wrong api_url path prefix, account
    /// SID or gateway url), not this message refused: counted as setup, apart from the
    /// numbers a provider refuses (400); a 408 is the provider's timeout.
    #[test]
    fn http_statuses_are_counted_by_what_they_say() {
        let kind = |status: u16| {
            ProviderError::Status {
                provider: "twilio",
                status,
                detail: String::new(),
                refused_number: None,
            }
            .kind()
        };
        assert_eq!(kind(400), FailureKind::Refused);
        assert_eq!(kind(404), FailureKind::Setup);
        assert_eq!(kind(405), FailureKind::Setup);
        assert_eq!(kind(408), FailureKind::Timeout);
        assert_eq!(kind(401), FailureKind::Auth);
        assert_eq!(kind(429), FailureKind::RateLimited);
        assert_eq!(kind(503), FailureKind::Server);
    }

    /// A provider (or a proxy in front of it) that answers with a megabyte: only the first
    /// 64 KiB are read.
    #[tokio::test]
    async fn a_huge_answer_is_read_only_up_to_the_cap() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head).await;
            let _ = s
                .write_all(b"HTTP/1.1 500 Oops\r\nContent-Length: 1048576\r\n\r\n")
                .await;
            let _ = s.write_all(&vec![b'a'; 1 << 20]).await;
        });
        let resp = reqwest::get(format!("http://{addr}/")).await.unwrap();
        let body = read_body(resp, "test", 1000).await;
        assert!(body.unread.is_none());
        assert_eq!(body.bytes.len(), MAX_RESPONSE_BYTES);
    }
}
