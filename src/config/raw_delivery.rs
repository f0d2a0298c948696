//! Raw serde shapes of `[phone]`, `[sms]`, `[voice]`, `[twilio]`, `[http_sms]`, `[callbacks]`
//! and the per-client factor keys, every default named. Validated in `validate_delivery.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawPhone {
    /// None: not in the file (the store only; see `PhoneConfig::sources_given`).
    pub sources: Option<Vec<String>>,
    pub default_country_code: String,
    pub allowed_country_codes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSms {
    pub provider: String,
    #[serde(default = "d_code_length")]
    pub code_length: u32,
    #[serde(default = "d_code_ttl")]
    pub code_ttl_secs: u64,
    #[serde(default = "d_sms_message")]
    pub message: String,
    #[serde(default = "d_per_user")]
    pub max_per_user: u32,
    #[serde(default = "d_per_nas")]
    pub max_per_nas: u32,
    #[serde(default = "d_window")]
    pub window_secs: u64,
    #[serde(default = "d_per_user_per_day")]
    pub max_per_user_per_day: u32,
}

fn d_code_length() -> u32 {
    6
}
fn d_code_ttl() -> u64 {
    300
}
fn d_sms_message() -> String {
    "Your sign-in code is {code}".into()
}
pub(crate) fn d_per_user() -> u32 {
    5
}
pub(crate) fn d_per_nas() -> u32 {
    200
}
pub(crate) fn d_window() -> u64 {
    300
}
pub(crate) fn d_per_user_per_day() -> u32 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVoice {
    pub provider: String,
    #[serde(default)]
    pub caller_id: Option<String>,
    #[serde(default = "d_fraud")]
    pub fraud_digits: String,
    #[serde(default = "d_ring")]
    pub ring_timeout_secs: u64,
    #[serde(default = "d_lifetime")]
    pub call_lifetime_secs: u64,
    /// Left out: [`default_greeting`] for the configured `fraud_digits`.
    pub greeting: Option<String>,
    /// The send limits, for a setup with calls and no `[sms]` (which names them for both).
    #[serde(default)]
    pub max_per_user: Option<u32>,
    #[serde(default)]
    pub max_per_nas: Option<u32>,
    #[serde(default)]
    pub window_secs: Option<u64>,
    #[serde(default)]
    pub max_per_user_per_day: Option<u32>,
}

fn d_fraud() -> String {
    "0".into()
}
fn d_ring() -> u64 {
    30
}
fn d_lifetime() -> u64 {
    120
}
/// What the callee hears when `greeting` is left out: the fraud keys as `fraud_digits` sets
/// them. A fixed "press zero" beside `fraud_digits = "9"` (an Azure MFA Server site's own
/// code carried over) had victims who followed it press 0#, a plain decline: no block, no
/// fraud record, and the attacker free to try again.
pub fn default_greeting(fraud_digits: &str) -> String {
    let spoken: Vec<&str> = fraud_digits
        .chars()
        .map(|c| match c {
            '0' => "zero",
            '1' => "one",
            '2' => "two",
            '3' => "three",
            '4' => "four",
            '5' => "five",
            '6' => "six",
            '7' => "seven",
            '8' => "eight",
            '9' => "nine",
            _ => "star",
        })
        .collect();
    format!(
        "This is a sign-in request. Press pound to approve. If you did not try to sign in, \
         press {}, then pound.",
        spoken.join(" ")
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTwilio {
    pub account_sid: String,
    #[serde(default)]
    pub auth_token: Option<String>,
    #[serde(default)]
    pub auth_token_file: Option<PathBuf>,
    /// Sender for SMS (and the default caller ID).
    pub from: String,
    #[serde(default = "d_twilio_url")]
    pub api_url: String,
    #[serde(default = "d_provider_timeout")]
    pub timeout_ms: u64,
}

fn d_twilio_url() -> String {
    "https://api.twilio.com".into()
}
fn d_provider_timeout() -> u64 {
    2500
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSms {
    pub url: String,
    #[serde(default = "d_post")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
    #[serde(default = "d_encoding")]
    pub encoding: String,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default = "d_auth")]
    pub auth: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub success_status: Vec<u16>,
    #[serde(default)]
    pub success_body_contains: String,
    #[serde(default = "d_provider_timeout")]
    pub timeout_ms: u64,
}

fn d_post() -> String {
    "POST".into()
}
fn d_encoding() -> String {
    "form".into()
}
fn d_auth() -> String {
    "none".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallbacks {
    pub listen: String,
    pub public_url: String,
}

/// The per-client keys of issue 4, as written in `[[client]]` (`raw::RawClient` carries them
/// as plain fields: serde's `flatten` cannot be combined with `deny_unknown_fields`).
#[derive(Debug)]
pub struct RawClientFactors {
    pub methods: Vec<String>,
    pub voice_mode: String,
    pub voice_budget_secs: u64,
    pub app_passwords: bool,
    pub second_factor_only: bool,
    pub provider_failure: String,
    pub remember_second_factor_secs: u64,
    pub exempt_networks: Vec<String>,
}

pub fn d_provider_failure() -> String {
    "reject".into()
}

pub fn d_methods() -> Vec<String> {
    vec!["totp".into(), "sms".into(), "voice".into()]
}
pub fn d_voice_mode() -> String {
    "challenge".into()
}
pub fn d_budget() -> u64 {
    super::delivery::DEFAULT_VOICE_BUDGET_SECS
}

/// The issue-4 sections of `RawConfig`, handed to validation together.
pub struct RawDelivery {
    pub phone: RawPhone,
    pub sms: Option<RawSms>,
    pub voice: Option<RawVoice>,
    pub twilio: Option<RawTwilio>,
    pub http_sms: Option<RawHttpSms>,
    pub callbacks: Option<RawCallbacks>,
}
