//! Validated configuration of the out-of-band factors: phone numbers, SMS, voice calls, the
//! providers, the callback listener, and the per-client factor policy. No `[sms]` section
//! means no SMS; no `[voice]` section means no calls.

use std::net::SocketAddr;
use std::time::Duration;

use crate::mfa::method::Method;
use crate::secret::Secret;

/// Default per-client time budget for a held call (`voice_budget_secs`).
pub const DEFAULT_VOICE_BUDGET_SECS: u64 = 50;
/// The longest `voice_budget_secs` a client may have.
pub const MAX_VOICE_BUDGET_SECS: u64 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneSource {
    Store,
    Mobile,
    Telephone,
}

#[derive(Debug, Clone)]
pub struct PhoneConfig {
    pub sources: Vec<PhoneSource>,
    /// Whether the file lists `sources` (else the default, the store only, which until
    /// this release also had the directory's mobile and telephoneNumber: worth a warning).
    pub sources_given: bool,
    /// Digits without '+'; empty: numbers without a country code are refused.
    pub default_country_code: String,
    /// Country calling codes (digits without '+') that texts and calls may go to; empty:
    /// any.
    pub allowed_country_codes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsProvider {
    Twilio,
    Http,
}

#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub provider: SmsProvider,
    pub code_length: u32,
    pub code_ttl: Duration,
    /// Contains `{code}`.
    pub message: String,
}

/// Codes sent and calls placed, together: per user (and per number) and per NAS within
/// `window`. From `[sms]`, or from `[voice]` in a setup with calls only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    pub max_per_user: u32,
    pub max_per_nas: u32,
    pub window: Duration,
    /// Sends to one user (all names of an entry), and to one number, in 24 hours.
    pub max_per_user_per_day: u32,
}

#[derive(Debug, Clone)]
pub struct VoiceConfig {
    pub caller_id: String,
    pub fraud_digits: String,
    pub ring_timeout: Duration,
    pub call_lifetime: Duration,
    pub greeting: String,
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    pub from: String,
    pub api_url: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateEncoding {
    /// Values percent-encoded (application/x-www-form-urlencoded).
    Form,
    /// Values escaped for a JSON string (the template supplies the quotes).
    Json,
    /// Values inserted as they are.
    None,
}

#[derive(Debug, Clone)]
pub enum HttpAuth {
    None,
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// `Debug` by hand: the URL may carry the gateway's key in its path or query, and header
/// values and JSON bodies often hold keys (`X-Api-Key`, `"api_key": …`), so none is printed.
#[derive(Clone)]
pub struct HttpSmsConfig {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub encoding: TemplateEncoding,
    pub content_type: String,
    pub auth: HttpAuth,
    /// Empty: any 2xx.
    pub success_status: Vec<u16>,
    pub success_body_contains: String,
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpSmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpSmsConfig")
            .field("url", &"***")
            .field("method", &self.method)
            .field("header_names", &header_names)
            .field("body", &"***")
            .field("encoding", &self.encoding)
            .field("content_type", &self.content_type)
            .field("auth", &self.auth)
            .field("success_status", &self.success_status)
            .field("success_body_contains", &self.success_body_contains)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct CallbacksConfig {
    pub listen: SocketAddr,
    /// Without a trailing slash; the provider signs the URL it called, so this must be the
    /// address exactly as the provider sees it.
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub phone: PhoneConfig,
    pub send_limits: SendLimits,
    pub sms: Option<SmsConfig>,
    pub voice: Option<VoiceConfig>,
    pub twilio: Option<TwilioConfig>,
    pub http_sms: Option<HttpSmsConfig>,
    pub callbacks: Option<CallbacksConfig>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            phone: PhoneConfig {
                sources: vec![PhoneSource::Store],
                sources_given: false,
                default_country_code: String::new(),
                allowed_country_codes: Vec::new(),
            },
            send_limits: SendLimits {
                max_per_user: super::raw_delivery::d_per_user(),
                max_per_nas: super::raw_delivery::d_per_nas(),
                window: Duration::from_secs(super::raw_delivery::d_window()),
                max_per_user_per_day: super::raw_delivery::d_per_user_per_day(),
            },
            sms: None,
            voice: None,
            twilio: None,
            http_sms: None,
            callbacks: None,
        }
    }
}

/// What a correct password gets when the SMS or call provider fails to take the message
/// (an HTTP error or no answer from its API). Never for a rate limit, a wrong code or an
/// unanswered call: those are decisions, not outages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderFailure {
    /// Access-Reject (fail closed, the default).
    Reject,
    /// Access-Accept on the password alone, audited as mode `fail-open` with the error.
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceMode {
    /// Hold the RADIUS request until the call is decided (within the budget).
    Hold,
    /// Access-Challenge at once; the follow-up request collects the decision.
    Challenge,
}

/// Per-client second-factor policy beyond the OTP mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFactors {
    /// Methods this client may use, in order of preference.
    pub methods: Vec<Method>,
    pub voice_mode: VoiceMode,
    pub voice_budget: Duration,
    pub app_passwords: bool,
    pub second_factor_only: bool,
    pub provider_failure: ProviderFailure,
    /// `remember_second_factor_secs`: after a second factor passes through this client, the
    /// same user from the same Calling-Station-Id needs only the password (on a
    /// second-factor-only client: nothing more than the gateway's own check) until this much
    /// time has passed. `None`: every login asks.
    pub remember: Option<Duration>,
    /// `exempt_networks`: a login whose Calling-Station-Id is an address in one of these
    /// needs only the password (audited as "exempt"). Empty: no such rule.
    pub exempt_networks: Vec<ipnet::IpNet>,
}

impl Default for ClientFactors {
    fn default() -> Self {
        ClientFactors {
            methods: vec![Method::Totp, Method::Sms, Method::Voice],
            voice_mode: VoiceMode::Challenge,
            voice_budget: Duration::from_secs(DEFAULT_VOICE_BUDGET_SECS),
            app_passwords: false,
            second_factor_only: false,
            provider_failure: ProviderFailure::Reject,
            remember: None,
            exempt_networks: Vec::new(),
        }
    }
}

impl ClientFactors {
    /// How long a request from this client may take: a client that holds calls gets its
    /// budget, every other client the server-wide deadline.
    pub fn request_deadline(&self, server_deadline: Duration) -> Duration {
        if self.voice_mode == VoiceMode::Hold && self.methods.contains(&Method::Voice) {
            self.voice_budget.max(server_deadline)
        } else {
            server_deadline
        }
    }
}
