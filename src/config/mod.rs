//! Configuration: `raw.rs` is the TOML as written (serde, unknown keys refused), `validate.rs`
//! builds the checked `Config` the rest of the program uses. Every error names the key.

pub mod client_challenge;
pub mod delivery;
mod parse_words;
pub mod raw;
pub mod raw_delivery;
mod raw_table;
pub mod upstream;
mod user_names;
pub mod validate;
mod validate_delivery;
mod validate_ldap;
mod validate_store;

pub use user_names::UserNames;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::auth::ldap::LdapSettings;
use crate::radius::reply_attr::{AttrKey, ReplyAttr};
use crate::secret::Secret;
use crate::store::OtpAlgorithm;

/// A configuration problem, always naming the key (`client[1].secret`) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // Not `source`: the message already says it, and a chain printed with `{:#}` would
    // say it again ("No such file or directory (os error 2): No such file or ...").
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

impl ConfigError {
    /// The error as a command reports it, naming the file once: a read or parse error
    /// names it already, a value's problem (`server.max_in_flight: ...`) does not.
    /// Always `config FILE: ...`: a parse error read `config: FILE: ...` beside a value's
    /// `config FILE: key: ...`.
    pub fn in_file(self, path: &Path) -> anyhow::Error {
        let named = path.display().to_string();
        let context = format!("config {named}");
        match self {
            ConfigError::Read { path, error } if path == named => {
                anyhow::Error::new(error).context(context)
            }
            ConfigError::Parse { path, message } if path == named => {
                anyhow::anyhow!(message).context(context)
            }
            ConfigError::Invalid { key, problem } if key == named => {
                anyhow::anyhow!(problem).context(context)
            }
            other => anyhow::Error::new(other).context(context),
        }
    }

    pub fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// The value `options` gives for the word `value` of the key `key`; an unknown word is
/// refused with the words there are: `"jsn" is not one of "text", "json"`.
pub(crate) fn one_of<T: Copy>(
    key: impl Into<String>,
    value: &str,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    match options.iter().find(|(word, _)| *word == value) {
        Some(&(_, v)) => Ok(v),
        None => {
            let words: Vec<String> = options.iter().map(|(w, _)| format!("{w:?}")).collect();
            Err(ConfigError::invalid(
                key,
                format!("{value:?} is not one of {}", words.join(", ")),
            ))
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    /// `[store] legacy_app_passwords`: app passwords stored before they were bound to their
    /// user (argon2id, or a keyed hash of the password alone) are accepted.
    pub legacy_app_passwords: bool,
    /// The directory; `None` only when every client's password is checked upstream, and
    /// then users are known by name alone (`auth::no_directory`).
    pub ldap: Option<LdapSettings>,
    /// How a typed user name becomes the user's key (`[users] strip_domains`).
    pub user_names: UserNames,
    pub totp: TotpConfig,
    pub hotp: HotpConfig,
    pub challenge: ChallengeConfig,
    pub lockout: LockoutConfig,
    pub audit: AuditConfig,
    /// The Prometheus endpoint, if configured.
    pub metrics: Option<MetricsConfig>,
    /// RADIUS over TLS, if configured.
    pub radsec: Option<RadsecConfig>,
    /// Phone numbers, SMS, calls, providers, callback listener (issue 4).
    pub delivery: delivery::DeliveryConfig,
    /// The groups of upstream RADIUS servers for clients with `primary = "upstream"`:
    /// `[upstream]` (group "default") first, then the `[upstreams.NAME]` groups.
    pub upstreams: Vec<upstream::UpstreamConfig>,
    pub clients: Vec<ClientConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub listen: Vec<SocketAddr>,
    pub max_in_flight: usize,
    pub request_deadline: Duration,
    pub duplicate_window: Duration,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite {
        path: PathBuf,
        key_file: PathBuf,
    },
    /// Several nodes sharing one database; every node must use the same key file.
    Postgres {
        settings: crate::store::postgres::PgSettings,
        key_file: PathBuf,
    },
}

impl StoreConfig {
    /// Whether other nodes may share this store (PostgreSQL): then another node can finish
    /// what this one leaves (a held call's login at a stop), and sees what it writes.
    pub fn shared(&self) -> bool {
        matches!(self, StoreConfig::Postgres { .. })
    }
}

#[derive(Debug, Clone)]
pub struct TotpConfig {
    pub issuer: String,
    pub window: u32,
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    pub period: u32,
}

/// The largest `[hotp] resync_window`: how far a resync may search (counters, or TOTP time
/// steps), and so the most clock drift a token is taken to have.
pub const MAX_RESYNC_WINDOW: u32 = 100_000;

/// HOTP verification (RFC 4226 §7.4: a look-ahead window, resynchronisation).
#[derive(Debug, Clone)]
pub struct HotpConfig {
    /// Counter values accepted ahead of the stored one (button presses without a login).
    pub window: u64,
    /// How far ahead `radmfa token resync` (and self-service) searches for two consecutive codes.
    pub resync_window: u64,
    /// A code beyond `window` but within `resync_window` is remembered, and the next login
    /// with the code right after it resynchronises the token and is accepted.
    pub self_resync: bool,
}

#[derive(Debug, Clone)]
pub struct ChallengeConfig {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub prompt: String,
}

#[derive(Debug, Clone)]
pub struct LockoutConfig {
    pub threshold: u32,
    pub duration: Duration,
}

/// `[radsec]`: RADIUS over TLS (RFC 6614) with mutual certificate authentication.
#[derive(Debug, Clone)]
pub struct RadsecConfig {
    pub listen: Vec<SocketAddr>,
    /// PEM: the server's certificate chain, and its private key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// PEM: the CA certificate(s) that sign the clients' certificates.
    pub ca_file: PathBuf,
    /// PEM: certificate revocation lists, one from every CA in the clients' chains: each in
    /// `ca_file`, and each intermediate (issuing) CA the NASes send.
    pub crl_file: Option<PathBuf>,
    /// Connections open at once, TLS handshakes included; more are closed on arrival.
    pub max_connections: usize,
    /// Of those, at most this many from one source address: one host of a client's
    /// network cannot take every slot.
    pub max_connections_per_address: usize,
    /// A connection that sends nothing for this long is closed (the NAS reconnects).
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served (plain HTTP; no secrets in it, but keep it internal).
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy)]
pub struct AuditConfig {
    pub include_name: bool,
    pub include_email: bool,
    /// Records older than this many days are deleted by the server; `None` keeps all.
    pub keep_days: Option<u32>,
}

/// How a client collects the second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpMode {
    /// Access-Challenge after the password, the code in the follow-up request.
    Challenge,
    /// Password and code in one User-Password: `password<delim>code`, or the trailing digits
    /// when the delimiter is empty.
    Inline { delimiter: String },
    /// The code alone in User-Password: the NAS checked the password itself (NetScaler's
    /// LDAP-then-RADIUS policies, a secondary server in an Ivanti realm). Token codes only.
    CodeOnly,
}

/// What to do with a user who has no enrolled factor.
/// Who checks a client's passwords.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Primary {
    /// A bind as the user in `[ldap]`.
    #[default]
    Ldap,
    /// An Access-Request to this group of upstream servers (`"default"`: `[upstream]`);
    /// the user's entry is still read from `[ldap]`.
    Upstream(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFactorPolicy {
    Reject,
    Allow,
}

/// What a client gets when a backend (directory, upstream server, store) fails or the
/// request runs out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFailure {
    /// An Access-Reject, at once: the user is told, and a NAS with one server stops there.
    Reject,
    /// No reply: the NAS's timeout runs out and it asks its next server (another radmfa
    /// node, which can finish any login on a shared store).
    NoReply,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub name: String,
    pub networks: Vec<IpNet>,
    pub secret: Secret,
    pub require_message_authenticator: bool,
    /// Who checks the password.
    pub primary: Primary,
    pub otp_mode: OtpMode,
    pub no_factor: NoFactorPolicy,
    pub on_backend_failure: BackendFailure,
    /// Allowed methods, voice mode and budget, app passwords, second-factor-only.
    pub factors: delivery::ClientFactors,
    /// Directory groups that may log in here, and those that skip the second factor.
    pub groups: GroupPolicy,
    /// Added to every Access-Accept through this client, then per group for its members.
    pub accept_attributes: AcceptAttributes,
    /// RadSec: the DNS name the client's certificate must be issued to (SAN); `None` = any
    /// certificate from `radsec.ca_file`.
    pub radsec_name: Option<String>,
    /// Which listeners this entry's requests may come through.
    pub transport: Transport,
    /// `challenge_echo` and `max_attempts`: this entry's own settings for its prompts.
    pub challenge: client_challenge::ClientChallenge,
}

/// A client entry's `transport`: an entry is for UDP or for RadSec, not both unless it
/// says so. Otherwise a RadSec-only entry's secret (which RadSec does not use, so it is
/// often a throwaway) would be live on UDP for its whole address range, and turning
/// `[radsec]` on would let any host in a UDP entry's range in with any certificate from
/// `radsec.ca_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Radsec,
    Both,
}

impl Transport {
    pub fn udp(self) -> bool {
        matches!(self, Transport::Udp | Transport::Both)
    }

    pub fn radsec(self) -> bool {
        matches!(self, Transport::Radsec | Transport::Both)
    }
}

/// A client's `accept_attributes` and `group_attributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptAttributes {
    /// For every accepted login.
    pub always: Vec<ReplyAttr>,
    /// (group DN, attributes) for members of the group, in config order.
    pub by_group: Vec<(String, Vec<ReplyAttr>)>,
}

impl AcceptAttributes {
    /// Single-valued attributes one list names twice (`accept_attributes`, or one group
    /// rule's): (the attribute, the list: "accept_attributes" or the group's DN). An Accept
    /// carries one, the first, and the second is dropped.
    pub fn repeated(&self) -> Vec<(String, &str)> {
        let lists = std::iter::once(("accept_attributes", &self.always))
            .chain(self.by_group.iter().map(|(g, a)| (g.as_str(), a)));
        let mut out = Vec::new();
        for (list, attributes) in lists {
            let mut seen: Vec<AttrKey> = Vec::new();
            for a in attributes.iter().filter(|a| a.single()) {
                if seen.contains(&a.key()) {
                    if !out.iter().any(|(n, l)| *n == a.name() && *l == list) {
                        out.push((a.name(), list));
                    }
                } else {
                    seen.push(a.key());
                }
            }
        }
        out
    }

    /// Single-valued attributes (RFC 2865 §5.44, and the vendor ones that name one thing) that two group rules both set: (the
    /// attribute, the first rule's group, the later rule's group). A user in both groups
    /// gets the first rule's value alone, which config order decides and the admin may not
    /// have meant.
    pub fn contested(&self) -> Vec<(String, &str, &str)> {
        let mut out = Vec::new();
        for (j, (later, attributes)) in self.by_group.iter().enumerate() {
            let mut named: Vec<AttrKey> = Vec::new();
            for a in attributes {
                if !a.single() || named.contains(&a.key()) {
                    continue;
                }
                named.push(a.key());
                // The same value in both rules is no contest: either rule gives it.
                let earlier = self.by_group[..j]
                    .iter()
                    .find(|(_, e)| e.iter().any(|b| b.key() == a.key() && b != a));
                if let Some((first, _)) = earlier {
                    out.push((a.name(), first.as_str(), later.as_str()));
                }
            }
        }
        out
    }
}

/// A client's `allow_groups` and `exempt_groups` (group DNs; empty = no such rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPolicy {
    /// Only members of one of these may log in through the client.
    pub allow: Vec<String>,
    /// Members of one of these log in with their password alone (audited as "exempt").
    pub exempt: Vec<String>,
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_text(path).map(|(config, _)| config)
    }

    /// [`Config::load`], and the text it was parsed from: `serve` compares a reload's
    /// sections with these, which a second read could find already changed.
    pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        validate::not_writable_by_everyone(&path.display().to_string(), path)?;
        Ok((Self::parse(&text, path)?, text))
    }

    /// Parses TOML text; `origin` names the file in messages and anchors relative paths.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        // serde_path_to_error names the full key (`server.max_in_flight`) in type errors;
        // toml's own message adds the line and column.
        let de = toml::Deserializer::new(text);
        let raw: raw::RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Parse {
                path: origin.display().to_string(),
                message: parse_message(text, &key, e.inner()),
            }
        })?;
        validate::validate(raw, origin)
    }

    /// The upstream group `group` names (`"default"`: `[upstream]`).
    pub fn upstream_group(&self, group: &str) -> Option<&upstream::UpstreamConfig> {
        self.upstreams.iter().find(|u| u.group == group)
    }
}

/// A TOML error for the log and the terminal: the key, toml's message and where, but not
/// the source line toml's own rendering quotes. That line may hold a shared secret or a
/// password (`secret = "bad\q..."`), and a failed reload logs the error. Where the key
/// names a secret, values quoted in the message (`invalid type: integer `12345``) go too.
fn parse_message(text: &str, key: &str, e: &toml::de::Error) -> String {
    // A value TOML itself cannot read (an integer past i64, a bad date) comes with no key
    // from serde: named from the line it is on (red team: `request_deadline_ms =
    // 18446744073709551616` said only "number too large to fit in target type").
    let named = match (key, e.span()) {
        ("" | ".", Some(span)) => key_on_line(text, span.start).unwrap_or_default(),
        _ => key.to_string(),
    };
    // Only serde's type errors quote a value; toml's own syntax messages quote what it
    // expected (`b`, `f`, … after a bad escape), which hiding would turn into noise.
    let serde_error = named == key;
    let key = named.as_str();
    let mut message = parse_words::admin_words(key, e.message().trim_end()).replace('\n', "; ");
    // TOML reads an unquoted date or time as a date-time, which serde sees as a table:
    // `bind_password = 1979-05-27T07:32:00Z` was "a table where a string is expected".
    if serde_error && e.message().starts_with("invalid type: map") {
        if let Some(value) = e.span().and_then(|s| text.get(s.start..)) {
            if looks_like_datetime(value) {
                message = message.replacen("a table where", "a date or time where", 1);
                if message.contains("a string (in quotes) is expected") {
                    message.push_str(": put it in quotes");
                }
            }
        }
    }
    let last = key.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    // Header values are often keys (Authorization, X-Api-Key), and a URL may carry one.
    // Not for an unknown key: what is quoted there is the key and the keys expected.
    if serde_error
        && (["secret", "password", "token", "key", "url", "authorization"]
            .iter()
            .any(|s| last.contains(s))
            || key.to_ascii_lowercase().contains("headers"))
        && !message.starts_with("unknown field")
    {
        message = hide_quoted(&message);
    }
    let at = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" (line {line}, column {column})")
    });
    let at = at.unwrap_or_default();
    if key.is_empty() || key == "." {
        format!("{message}{at}")
    } else {
        format!("{key}: {message}{at}")
    }
}

/// Whether a TOML value starts as a date-time, a date or a time does (`1979-05-27`,
/// `07:32:00`): a table's value starts with `{` or is on a header's line.
fn looks_like_datetime(value: &str) -> bool {
    let b = value.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    (digits(0..4) && b.get(4) == Some(&b'-')) || (digits(0..2) && b.get(2) == Some(&b':'))
}

/// The full key whose value is at byte `at` of `text` (`server.request_deadline_ms`,
/// `client[1].secret`), read from its line and the table header above it: only where the
/// line is `key = value` with `at` in the value. Never the value itself.
fn key_on_line(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let eq = line.find('=')?;
    if start + eq >= at {
        return None;
    }
    let name = line[..eq].trim();
    let bare = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !bare(name) {
        return None;
    }
    // The table it is in: the last header above, `[[client]]` counted. Lines inside a
    // multi-line string are no headers, and a line that starts inside one is no key: its
    // text is a value's (a secret's `pass=word` was named as the key `client[0].pass`,
    // review).
    // Telling them apart takes a TOML tokenizer (comments, literal strings and escapes
    // all hold `"""`); a file with a multi-line string delimiter anywhere above is given no
    // key at all, which radmfa's configs need nowhere (review: a counting rule was fooled
    // into printing a secret's text).
    let before = &text[..start];
    if before.contains("\"\"\"") || before.contains("\'\'\'") {
        return None;
    }
    let mut table = None;
    let mut clients: std::collections::HashMap<String, usize> = Default::default();
    for l in before.lines().map(str::trim) {
        if let Some(t) = l.strip_prefix("[[").and_then(|l| l.split_once("]]")) {
            let n = clients.entry(t.0.trim().to_string()).or_default();
            table = Some(format!("{}[{}]", t.0.trim(), *n));
            *n += 1;
        } else if let Some(t) = l.strip_prefix('[').and_then(|l| l.split_once(']')) {
            table = Some(t.0.trim().to_string());
        }
    }
    Some(match table {
        Some(t) if bare(t.split('[').next().unwrap_or("")) => format!("{t}.{name}"),
        Some(_) => return None,
        None => name.to_string(),
    })
}

/// Replaces what serde quotes in an error message (`...` and "...") with a placeholder.
/// serde writes a string value with Debug escapes (`"k\"ey"`): an escaped character does not
/// end the quote, or the rest of a secret holding a quote would be shown.
pub(crate) fn hide_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in message.chars() {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => {
                out.push_str("(value not shown)");
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '`' || c == '"' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push_str("(value not shown)");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_toml_cannot_read_is_named_by_its_key() {
        let text = "[server]\nname = \"x\"\nrequest_deadline_ms = 18446744073709551616\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let said = super::parse_message(text, "", &e);
        assert!(
            said.starts_with("server.request_deadline_ms: ") && said.contains("line 3"),
            "{said}"
        );
        let text =
            "[[client]]\nname = \"a\"\n[[client]]\nname = \"b\"\nmax = 99999999999999999999\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        assert!(super::parse_message(text, "", &e).starts_with("client[1].max: "));
        // Inside a multi-line string: neither its text as a key nor a line of it as a
        // header.
        let text = "[[client]]\nname = \"a\"\nsecret = \"\"\"\npass=wo\\qrd\"\"\"\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let said = super::parse_message(text, "", &e);
        assert!(!said.contains("pass") && !said.contains("wo"), "{said}");
        let text = "[ldap]\nnote = \"\"\"\n[client]\n\"\"\"\ntimeout_ms = 99999999999999999999\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let said = super::parse_message(text, "", &e);
        assert!(!said.contains("client"), "{said}");
        // Delimiters that open nothing (in a literal string, a comment, escaped) do not
        // make the lines after them keys again.
        for above in [
            "name = 'x\"\"\"y'\n",
            "# the secret below uses \"\"\" quoting\n",
            "name = \"\"\"ab\\\"\"\"\"\n",
        ] {
            let text = format!(
                "[[client]]\n{above}address = \"127.0.0.1\"\nsecret = \"\"\"\nhunter2=wo\\qrd\"\"\"\n"
            );
            let Err(e) = toml::from_str::<toml::Table>(&text) else {
                continue;
            };
            let said = super::parse_message(&text, "", &e);
            assert!(!said.contains("hunter2"), "{above:?}: {said}");
        }
        // Not a value: no key made up.
        let text = "[server\nname = 1\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        assert!(!super::parse_message(text, "", &e).contains("server."));
    }

    /// An unquoted date is TOML's date-time, which serde calls a map: said as a date or time,
    /// not as a table, and never quoted (the key is a password's here).
    #[test]
    fn a_date_where_a_string_belongs_is_called_a_date() {
        let text = "[server]\nname = \"x\"\n[ldap]\nurls = [\"ldap://127.0.0.1\"]\n\
                    base_dn = \"dc=x\"\nbind_dn = \"cn=a,dc=x\"\n\
                    bind_password = 1979-05-27T07:32:00Z\n";
        let e = super::Config::parse(text, "t.toml".as_ref())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("ldap.bind_password: a date or time where a string (in quotes) is expected: put it in quotes")
                && !e.contains("1979"),
            "{e}"
        );
        // A table where a string belongs is still a table.
        let text = "[server]\nname = { a = 1 }\n";
        let e = super::Config::parse(text, "t.toml".as_ref())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("server.name: a table where"), "{e}");
    }

    /// serde writes a string value with Debug escapes: a quote inside a secret must not end
    /// the hidden part early.
    #[test]
    fn a_quote_inside_a_quoted_value_stays_hidden() {
        let shown =
            super::hide_quoted(r#"invalid type: string "k\"ey-very-secret\\", expected a map"#);
        assert_eq!(
            shown,
            r#"invalid type: string "(value not shown)", expected a map"#
        );
        assert_eq!(
            super::hide_quoted("invalid value: `7`, expected a string"),
            "invalid value: `(value not shown)`, expected a string"
        );
    }

    /// A list key written as one string is that one item: `listen = "…"` read
    /// "invalid type: string, expected a sequence". A wrong type still names the key.
    #[test]
    fn a_single_string_is_a_list_of_one() {
        let text = |listen: &str| {
            format!(
                "[server]\nlisten = {listen}\n[ldap]\nurls = \"ldap://127.0.0.1:389\"\n\
                 bind_dn = \"cn=admin,dc=x\"\nbind_password = \"pw\"\nbase_dn = \"dc=x\"\n\
                 [store]\npath = \"/tmp/x.db\"\n[[client]]\nname = \"vpn\"\n\
                 address = \"127.0.0.1\"\nsecret = \"a-long-enough-shared-secret\"\n\
                 exempt_groups = \"cn=admins,dc=x\"\n"
            )
        };
        let cfg = super::Config::parse(&text("\"127.0.0.1:1812\""), "t.toml".as_ref()).unwrap();
        assert_eq!(cfg.server.listen.len(), 1);
        assert_eq!(cfg.ldap.as_ref().unwrap().urls.len(), 1);
        let e = super::Config::parse(&text("1812"), "t.toml".as_ref())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("server.listen") && e.contains("a string, or a list of strings"),
            "{e}"
        );
    }

    /// Values that passed the check and failed later, or did nothing, named by key: an
    /// empty path (the config's own directory), an empty [phone] sources (no number ever
    /// used), an attribute name the directory cannot have, and a client name taken, with
    /// the entry that has it.
    #[test]
    fn empty_or_impossible_values_are_named() {
        let base =
            "[server]\nlisten = \"127.0.0.1:1812\"\n[ldap]\nurls = \"ldap://127.0.0.1:389\"\n\
                    bind_dn = \"cn=admin,dc=x\"\nbind_password = \"pw\"\nbase_dn = \"dc=x\"\n\
                    {ldap}\n[store]\npath = {path}\nkey_file = \"/tmp/x.key\"\n{more}\n\
                    [[client]]\nname = \"vpn\"\naddress = \"127.0.0.1\"\n\
                    secret = \"a-long-enough-shared-secret\"\nexempt_groups = \"cn=admins,dc=x\"\n\
                    {client}";
        let refused = |ldap: &str, path: &str, more: &str, client: &str| {
            let text = base
                .replace("{ldap}", ldap)
                .replace("{path}", path)
                .replace("{more}", more)
                .replace("{client}", client);
            super::Config::parse(&text, "/etc/radmfa/t.toml".as_ref())
                .err()
                .unwrap_or_else(|| panic!("passed:\n{text}"))
                .to_string()
        };
        let e = refused("", "\"\"", "", "");
        assert!(
            e.contains("store.path") && e.contains("must not be empty"),
            "{e}"
        );
        let e = refused("ca_file = \"\"", "\"/tmp/x.db\"", "", "");
        assert!(
            e.contains("ldap.ca_file") && e.contains("must not be empty"),
            "{e}"
        );
        let e = refused("", "\"/tmp/x.db\"", "[phone]\nsources = []", "");
        assert!(
            e.contains("phone.sources") && e.contains("at least one"),
            "{e}"
        );
        let e = refused(
            "[ldap.attributes]\nmobile = \"bad attr\"",
            "\"/tmp/x.db\"",
            "",
            "",
        );
        assert!(e.contains("ldap.attributes.mobile"), "{e}");
        // An OID: the directory answers under the name, and nothing was found.
        let e = refused(
            "[ldap.attributes]\ntelephone = \"2.5.4.20\"",
            "\"/tmp/x.db\"",
            "",
            "",
        );
        assert!(e.contains("ldap.attributes.telephone"), "{e}");
        // "" leaves an attribute unread, which a phone source must not be.
        let e = refused(
            "[ldap.attributes]\nmobile = \"\"",
            "\"/tmp/x.db\"",
            "[phone]\nsources = [\"store\", \"mobile\"]",
            "",
        );
        assert!(
            e.contains("ldap.attributes.mobile") && e.contains("not read"),
            "{e}"
        );
        let unread = base
            .replace("{ldap}", "[ldap.attributes]\nmail = \"\"\nmobile = \"\"")
            .replace("{path}", "\"/tmp/x.db\"")
            .replace("{more}", "")
            .replace("{client}", "");
        assert!(
            super::Config::parse(&unread, "/etc/radmfa/t.toml".as_ref()).is_ok(),
            "\"\" leaves an attribute unread, as it always did"
        );
        let e = refused(
            "",
            "\"/tmp/x.db\"",
            "",
            "[[client]]\nname = \"VPN\"\naddress = \"127.0.0.2\"\n\
             secret = \"a-long-enough-shared-secret\"\nexempt_groups = \"cn=admins,dc=x\"\n",
        );
        assert!(
            e.contains("client[1].name") && e.contains("client[0]'s name already"),
            "{e}"
        );
    }

    /// One directory server listed twice, however written, is refused: when it is down a
    /// failover list waits for it twice. Another scheme or port is another server.
    #[test]
    fn a_directory_server_listed_twice_is_refused() {
        let text = |urls: &str| {
            format!(
                "[server]\nlisten = \"127.0.0.1:1812\"\n[ldap]\nurls = {urls}\n\
                 bind_dn = \"cn=admin,dc=x\"\nbind_password = \"pw\"\nbase_dn = \"dc=x\"\n\
                 [store]\npath = \"/tmp/x.db\"\n[[client]]\nname = \"vpn\"\n\
                 address = \"127.0.0.1\"\nsecret = \"a-long-enough-shared-secret\"\n\
                 exempt_groups = \"cn=admins,dc=x\"\n"
            )
        };
        for twice in [
            r#"["ldap://dc1.example.org", "ldap://dc2.example.org", "ldap://DC1.example.org:389/"]"#,
            r#"["ldaps://dc1.example.org:636", "ldaps://dc1.example.org", "ldap://dc3"]"#,
        ] {
            let e = super::Config::parse(&text(twice), "t.toml".as_ref())
                .err()
                .unwrap_or_else(|| panic!("{twice} passed"))
                .to_string();
            assert!(
                e.contains("ldap.urls[") && e.contains("names already"),
                "{twice}: {e}"
            );
        }
        for fine in [
            r#"["ldap://dc1.example.org", "ldaps://dc1.example.org"]"#,
            r#"["ldap://dc1.example.org:389", "ldap://dc1.example.org:3890"]"#,
        ] {
            let cfg = super::Config::parse(&text(fine), "t.toml".as_ref());
            assert!(
                cfg.is_ok(),
                "{fine}: {:?}",
                cfg.err().map(|e| e.to_string())
            );
        }
    }
}
