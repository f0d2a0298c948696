//! The TOML file exactly as written: serde shapes with every default named and unknown keys
//! refused. `validate.rs` turns this into `Config`, which runtime code uses.
//!
//! No `Debug` here (nor in `raw_delivery.rs`, `RawUpstream`): these hold secrets as plain
//! strings until validation wraps them in `Secret`, and a `{:?}` of a raw struct would print
//! them. `Config` has `Debug`; its secrets print as `***`.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub server: RawServer,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub store: RawStore,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub users: RawUsers,
    /// Optional only when every client's password goes upstream.
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub ldap: Option<RawLdap>,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub totp: RawTotp,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub hotp: RawHotp,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub challenge: RawChallenge,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub lockout: RawLockout,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub audit: RawAudit,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub metrics: Option<RawMetrics>,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub radsec: Option<RawRadsec>,
    // Out-of-band factors (issue 4): raw_delivery.rs.
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub phone: super::raw_delivery::RawPhone,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub sms: Option<super::raw_delivery::RawSms>,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub voice: Option<super::raw_delivery::RawVoice>,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub twilio: Option<super::raw_delivery::RawTwilio>,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub http_sms: Option<super::raw_delivery::RawHttpSms>,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub callbacks: Option<super::raw_delivery::RawCallbacks>,
    #[serde(default, deserialize_with = "crate::config::raw_table::optional_table")]
    pub upstream: Option<super::upstream::RawUpstream>,
    /// Named groups of upstream servers, `[upstreams.NAME]`, for clients with `upstream = NAME`.
    #[serde(default, deserialize_with = "crate::config::raw_table::named_tables")]
    pub upstreams: std::collections::BTreeMap<String, super::upstream::RawUpstream>,
    #[serde(
        default,
        rename = "client",
        deserialize_with = "crate::config::raw_table::tables"
    )]
    pub clients: Vec<RawClient>,
}

/// `[users]`: how typed names become users, whatever checks the password.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUsers {
    /// Domains taken off `DOMAIN\user` and `user@domain` (config::user_names).
    #[serde(deserialize_with = "string_or_list")]
    pub strip_domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub name: Option<String>,
    #[serde(deserialize_with = "string_or_list")]
    pub listen: Vec<String>,
    pub max_in_flight: usize,
    pub request_deadline_ms: u64,
    pub duplicate_window_secs: u64,
    pub shutdown_grace_ms: u64,
    pub log_format: String,
    pub log_level: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            name: None,
            listen: vec!["0.0.0.0:1812".into(), "[::]:1812".into()],
            max_in_flight: 512,
            request_deadline_ms: DEFAULT_REQUEST_DEADLINE_MS,
            duplicate_window_secs: 30,
            shutdown_grace_ms: 5000,
            log_format: "text".into(),
            log_level: "info".into(),
        }
    }
}

/// `[store]`. Keys that belong to one store type are `Option`s, so a key given for the other
/// type is an error instead of being silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    #[serde(rename = "type")]
    pub kind: String,
    pub key_file: PathBuf,
    // sqlite
    pub path: Option<PathBuf>,
    // postgres
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub pool_size: Option<u32>,
    pub connect_timeout_ms: Option<u64>,
    pub sslmode: Option<String>,
    pub ssl_root_cert: Option<PathBuf>,
    /// Accept app passwords stored in the forms from before they were bound to their user.
    pub legacy_app_passwords: bool,
}

/// `server.request_deadline_ms` when not given.
pub const DEFAULT_REQUEST_DEADLINE_MS: u64 = 4000;
pub const DEFAULT_SQLITE_PATH: &str = "/var/lib/radmfa/radmfa.db";
pub const DEFAULT_PG_POOL_SIZE: u32 = 16;
pub const DEFAULT_PG_CONNECT_TIMEOUT_MS: u64 = 1000;

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            kind: "sqlite".into(),
            key_file: "/var/lib/radmfa/radmfa.key".into(),
            path: None,
            url: None,
            url_file: None,
            pool_size: None,
            connect_timeout_ms: None,
            sslmode: None,
            ssl_root_cert: None,
            legacy_app_passwords: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLdap {
    #[serde(deserialize_with = "string_or_list")]
    pub urls: Vec<String>,
    #[serde(default)]
    pub starttls: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    pub bind_dn: String,
    #[serde(default)]
    pub bind_password: Option<String>,
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    pub base_dn: String,
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    #[serde(default)]
    pub enabled_filter: Option<String>,
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_ldap_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    #[serde(default = "default_bind_concurrency")]
    pub max_concurrent_binds: usize,
    #[serde(default = "default_idle_close")]
    pub idle_close_secs: u64,
    #[serde(default)]
    pub entry_cache_seconds: u64,
    #[serde(default = "default_entry_cache_size")]
    pub entry_cache_size: usize,
    /// The older place of `[users] strip_domains`, still read (config::user_names).
    #[serde(default, deserialize_with = "string_or_list")]
    pub strip_domains: Vec<String>,
    #[serde(default, deserialize_with = "crate::config::raw_table::table")]
    pub attributes: RawLdapAttributes,
}

fn default_group_filter() -> String {
    crate::auth::ldap::DEFAULT_GROUP_FILTER.into()
}

fn default_user_filter() -> String {
    "(uid={user})".into()
}
fn default_connect_timeout() -> u64 {
    1500
}
fn default_ldap_timeout() -> u64 {
    2000
}
fn default_pool_size() -> usize {
    16
}
fn default_bind_concurrency() -> usize {
    32
}
fn default_idle_close() -> u64 {
    crate::auth::ldap::POOL_MAX_IDLE.as_secs()
}
fn default_entry_cache_size() -> usize {
    10_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLdapAttributes {
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub mail: String,
    pub mobile: String,
    pub telephone: String,
}

impl Default for RawLdapAttributes {
    fn default() -> Self {
        RawLdapAttributes {
            display_name: "displayName".into(),
            given_name: "givenName".into(),
            surname: "sn".into(),
            mail: "mail".into(),
            mobile: "mobile".into(),
            telephone: "telephoneNumber".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTotp {
    pub issuer: String,
    pub window: u32,
    pub algorithm: String,
    pub digits: u32,
    pub period: u32,
}

impl Default for RawTotp {
    fn default() -> Self {
        RawTotp {
            issuer: "radmfa".into(),
            window: 1,
            algorithm: "SHA1".into(),
            digits: 6,
            period: 30,
        }
    }
}

/// `[hotp]`: event-based (RFC 4226) hardware tokens.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHotp {
    pub window: u32,
    pub resync_window: u32,
    pub self_resync: bool,
}

impl Default for RawHotp {
    fn default() -> Self {
        RawHotp {
            window: 10,
            resync_window: 1000,
            self_resync: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawChallenge {
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub prompt: String,
}

impl Default for RawChallenge {
    fn default() -> Self {
        RawChallenge {
            timeout_secs: 120,
            max_attempts: 1,
            // Ends in ": ": pam_radius_auth (SSH, sudo) shows the prompt as it is, and the
            // code typed was glued to its last word. A GUI NAS shows it as harmlessly.
            prompt: "Enter the code from your authenticator app or token: ".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLockout {
    pub threshold: u32,
    pub duration_secs: u64,
}

impl Default for RawLockout {
    fn default() -> Self {
        RawLockout {
            threshold: 5,
            duration_secs: 900,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    pub include_name: bool,
    pub include_email: bool,
    /// 0: keep every record.
    pub keep_days: u32,
}

/// `[radsec]`: RADIUS over TLS (RFC 6614), off unless the section is there.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRadsec {
    #[serde(default = "default_radsec_listen", deserialize_with = "string_or_list")]
    pub listen: Vec<String>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
    pub crl_file: Option<PathBuf>,
    #[serde(default = "default_radsec_max_connections")]
    pub max_connections: u32,
    /// Default: 16, or `max_connections` if that is smaller.
    pub max_connections_per_address: Option<u32>,
    #[serde(default = "default_radsec_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

fn default_radsec_max_connections() -> u32 {
    256
}

pub const DEFAULT_RADSEC_MAX_CONNECTIONS_PER_ADDRESS: u32 = 16;

fn default_radsec_idle_timeout_secs() -> u64 {
    600
}

fn default_radsec_listen() -> Vec<String> {
    vec!["0.0.0.0:2083".into(), "[::]:2083".into()]
}

/// `[metrics]`: the Prometheus endpoint, off unless the section is there.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: String,
    /// One address or CIDR, or a list of them.
    pub address: OneOrMany,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default = "yes")]
    pub require_message_authenticator: bool,
    /// Who checks the password: "ldap" (the default) or "upstream" (`[upstream]`).
    #[serde(default = "default_primary")]
    pub primary: String,
    /// With `primary = "upstream"`: which `[upstreams.NAME]` group; default `[upstream]`.
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default = "default_otp_mode")]
    pub otp_mode: String,
    #[serde(default = "default_delimiter")]
    pub inline_delimiter: String,
    #[serde(default = "default_no_factor")]
    pub no_factor: String,
    #[serde(default = "default_on_backend_failure")]
    pub on_backend_failure: String,
    // Issue 4, validated by validate_delivery::client_factors.
    /// `None` where the file leaves it out (the default list then; see `d_methods`): a
    /// code_only entry narrows the default quietly, and refuses sms or voice written out.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default = "super::raw_delivery::d_voice_mode")]
    pub voice_mode: String,
    #[serde(default = "super::raw_delivery::d_budget")]
    pub voice_budget_secs: u64,
    #[serde(default)]
    pub app_passwords: bool,
    #[serde(default)]
    pub second_factor_only: bool,
    #[serde(default = "super::raw_delivery::d_provider_failure")]
    pub provider_failure: String,
    #[serde(default)]
    pub remember_second_factor_secs: u64,
    #[serde(default, deserialize_with = "string_or_list")]
    pub exempt_networks: Vec<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub allow_groups: Vec<String>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub exempt_groups: Vec<String>,
    #[serde(default)]
    pub accept_attributes: Vec<String>,
    #[serde(default, deserialize_with = "crate::config::raw_table::tables")]
    pub group_attributes: Vec<RawGroupAttributes>,
    #[serde(default)]
    pub radsec_name: Option<String>,
    /// "udp", "radsec" or "both"; default "radsec" with `radsec_name`, else "udp".
    #[serde(default)]
    pub transport: Option<String>,
    /// Prompt (RFC 2869) on this client's Access-Challenges; unset: none.
    #[serde(default)]
    pub challenge_echo: Option<bool>,
    /// `[challenge] max_attempts` for this client's prompts.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

/// `[[client.group_attributes]]`: attributes for the members of one group.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroupAttributes {
    pub group: String,
    pub attributes: Vec<String>,
}

/// `client.address`: one address or CIDR, or a list. Its `expecting` is what a wrong type
/// is told, instead of serde's "did not match any variant of untagged enum OneOrMany".
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "an address or CIDR (\"192.0.2.10\", \"10.0.0.0/8\"), or a list of them"
)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A list of strings that also takes one string: `listen = "0.0.0.0:1812"` is what most
/// people write for one address, and "invalid type: string, expected a sequence" told them
/// only that it was wrong.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string, or a list of strings")]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    Ok(match List::deserialize(d)? {
        List::One(s) => vec![s],
        List::Many(v) => v,
    })
}

pub(super) fn yes() -> bool {
    true
}
fn default_primary() -> String {
    "ldap".into()
}
fn default_otp_mode() -> String {
    "challenge".into()
}
fn default_delimiter() -> String {
    ",".into()
}
fn default_no_factor() -> String {
    "reject".into()
}
fn default_on_backend_failure() -> String {
    "reject".into()
}
