//! Raw → validated for the out-of-band factor sections; every error names its key.

use std::path::Path;
use std::time::Duration;

use super::delivery::*;
use super::raw_delivery::*;
use super::validate::{exact_network, required_secret};
use super::ConfigError;
use crate::mfa::method::Method;

fn range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T, ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::invalid(
            key,
            format!("must be between {lo} and {hi}"),
        ));
    }
    Ok(v)
}

fn is_e164(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The URL itself is not shown: `http_sms.url` may carry a key in its query or path. It
/// must parse as a URL with sample values in its placeholders: one that does not would
/// fail every send, and must not wait for the first login to say so.
fn url_key(key: &str, url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ConfigError::invalid(
            key,
            "must start with https:// or http://",
        ));
    }
    let sample =
        crate::delivery::http::render(url, &SAMPLE_VALUES, crate::delivery::http::percent_in_url);
    match reqwest::Url::parse(&sample) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(ConfigError::invalid(key, "has no host")),
        Err(e) => Err(ConfigError::invalid(
            key,
            format!("is not a valid URL ({e})"),
        )),
    }
}

/// `callbacks.public_url` is the prefix of every URL radmfa hands the provider (and so
/// writes into call requests and TwiML, which the provider logs). A `user:password@` there
/// would travel to the provider with every call, and a query or fragment would end up in
/// the middle of the paths radmfa appends; a reverse proxy that wants a credential should
/// check the provider's signature or source address instead.
fn public_url_shape(url: &str) -> Result<(), ConfigError> {
    base_url(
        "callbacks.public_url",
        url,
        "the provider's requests are checked by their signature",
        "give the base URL only; radmfa appends /twilio/voice/... to it",
    )
    .map(|_| ())
}

/// `twilio.api_url` is the base that radmfa appends `/2010-04-01/Accounts/{sid}/...` to,
/// by string: the API's path there doubled it (`.../2010-04-01/2010-04-01/...`, every send a 404),
/// a query or fragment swallowed the appended path (the request went to the bare host), and
/// a `user:password@` sent a second Authorization beside the Account SID's.
fn api_url_shape(url: &str) -> Result<(), ConfigError> {
    let key = "twilio.api_url";
    let parsed = base_url(
        key,
        url,
        "radmfa signs in with twilio.account_sid and auth_token",
        "give the base URL only, such as \"https://api.twilio.com\"; radmfa appends \
         /2010-04-01/Accounts/...",
    )?;
    // A gateway or egress proxy may sit behind a path prefix (https://gw/twilio); the
    // API's own path may not be there too.
    if parsed.path().contains("2010-04-01") {
        return Err(ConfigError::invalid(
            key,
            "has the API's path (2010-04-01): give the base URL only, such as \
             \"https://api.twilio.com\"; radmfa appends /2010-04-01/Accounts/...",
        ));
    }
    Ok(())
}

/// `url` parsed, as a base radmfa appends paths to by string: no `user:password@` (`why_no_user`
/// says what stands in for one) and no query or fragment (`appended` says what comes after).
fn base_url(
    key: &str,
    url: &str,
    why_no_user: &str,
    appended: &str,
) -> Result<reqwest::Url, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::invalid(key, format!("is not a valid URL ({e})")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::invalid(
            key,
            format!("carries a user name or password (user:password@): remove it; {why_no_user}"),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::invalid(
            key,
            format!("has a query or fragment (? or #): {appended}"),
        ));
    }
    Ok(parsed)
}

/// A `user:password@` in `http_sms.url` is sent as Basic authentication (reqwest makes the
/// Authorization header of it); with `http_sms.auth` or an Authorization header as well,
/// the gateway got two, and a strict one refuses that or reads the wrong one.
fn http_url_userinfo(
    url: &str,
    auth: &HttpAuth,
    authorization_header: bool,
) -> Result<(), ConfigError> {
    let sample =
        crate::delivery::http::render(url, &SAMPLE_VALUES, crate::delivery::http::percent_in_url);
    let Ok(parsed) = reqwest::Url::parse(&sample) else {
        return Ok(());
    };
    if parsed.username().is_empty() && parsed.password().is_none() {
        return Ok(());
    }
    let other = if !matches!(auth, HttpAuth::None) {
        Some("http_sms.auth")
    } else if authorization_header {
        Some("an Authorization header")
    } else {
        None
    };
    match other {
        Some(other) => Err(ConfigError::invalid(
            "http_sms.url",
            format!(
                "carries a user name or password (user:password@), sent as Basic \
                 authentication beside the one {other} makes: remove one of them (auth = \
                 \"basic\" with username and password_file keeps the password out of the url)"
            ),
        )),
        None => Ok(()),
    }
}

/// Values filled into templates to check them: the longest of each kind.
const SAMPLE_VALUES: [(&str, &str); 3] = [
    ("phone", "+123456789012345"),
    ("code", "1234567890"),
    ("message", "Your sign-in code is 1234567890"),
];

/// Refuses a `{name}` that is no placeholder (`{mesage}`, `{Phone}`): it would be sent as
/// it is, and the gateway asked to text "{mesage}" (or to a number "{Phone}"). Only a
/// brace, letters/digits/underscores and a brace count, so a JSON body's own braces pass.
fn known_placeholders(key: &str, template: &str) -> Result<(), ConfigError> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        if name.is_empty() || !after.starts_with('}') {
            continue;
        }
        if !SAMPLE_VALUES.iter().any(|(known, _)| *known == name) {
            return Err(ConfigError::invalid(
                key,
                format!("{{{name}}} is not a placeholder: use {{phone}}, {{code}} or {{message}}"),
            ));
        }
    }
    Ok(())
}

/// A token goes into the `Authorization` header as it is: one with a line break or another
/// control character (a token pasted across two lines) makes no valid header, and every
/// SMS would fail at its send with reqwest's "builder error".
fn bearer_token(
    token: crate::secret::Secret,
    from_file: bool,
) -> Result<crate::secret::Secret, ConfigError> {
    let key = if from_file {
        "http_sms.token_file"
    } else {
        "http_sms.token"
    };
    // As reqwest checks it (`from_bytes`: text past ASCII passes, as it does there).
    let valid = token.expose_str().is_some_and(|t| {
        reqwest::header::HeaderValue::from_bytes(format!("Bearer {t}").as_bytes()).is_ok()
    });
    if !valid {
        return Err(ConfigError::invalid(
            key,
            "is not a valid HTTP header value (it holds a line break or another control \
             character): the token is sent as `Authorization: Bearer <token>`",
        ));
    }
    Ok(token)
}

/// A header must be one HTTP can carry, with its placeholders filled in. Only the name is
/// shown: a header value is often a key.
fn header_key(name: &str, value: &str) -> Result<(), ConfigError> {
    let key = format!("http_sms.headers.{name}");
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::invalid(&key, "is not a valid HTTP header name"))?;
    let filled = crate::delivery::http::render(value, &SAMPLE_VALUES, str::to_string);
    reqwest::header::HeaderValue::from_str(&filled).map_err(|_| {
        ConfigError::invalid(
            &key,
            "its value is not a valid HTTP header value (no line breaks or control characters)",
        )
    })?;
    Ok(())
}

pub fn validate(raw: RawDelivery, base: &Path) -> Result<DeliveryConfig, ConfigError> {
    let RawDelivery {
        phone,
        sms,
        voice,
        twilio,
        http_sms,
        callbacks,
    } = raw;
    let phone = phone_config(phone)?;
    let twilio = twilio.map(|t| twilio_config(t, base)).transpose()?;
    let http_sms = http_sms.map(|h| http_sms_config(h, base)).transpose()?;
    let callbacks = callbacks.map(callbacks_config).transpose()?;
    let (sms, mut send_limits) = match sms {
        Some(s) => {
            let (sms, limits) = sms_config(s)?;
            (Some(sms), Some(limits))
        }
        None => (None, None),
    };
    if let Some(s) = &sms {
        match s.provider {
            SmsProvider::Twilio if twilio.is_none() => {
                return Err(ConfigError::invalid(
                    "sms.provider",
                    "\"twilio\" needs a [twilio] section",
                ))
            }
            SmsProvider::Http if http_sms.is_none() => {
                return Err(ConfigError::invalid(
                    "sms.provider",
                    "\"http\" needs an [http_sms] section",
                ))
            }
            _ => {}
        }
        // A header carrying {message} carries the configured text: one with a line break
        // in it would fail every send, so it is refused here with the text filled in.
        if let (SmsProvider::Http, Some(h)) = (&s.provider, &http_sms) {
            let text = s.message.replace("{code}", "1234567890");
            for (name, value) in h.headers.iter().filter(|(_, v)| v.contains("{message}")) {
                let filled = value.replace("{message}", &text);
                if reqwest::header::HeaderValue::from_str(&filled).is_err() {
                    return Err(ConfigError::invalid(
                        format!("http_sms.headers.{name}"),
                        "carries {message}, and sms.message has a line break or control \
                         character a header cannot hold",
                    ));
                }
            }
        }
    }
    let voice = match voice {
        None => None,
        Some(mut v) => {
            let limits = voice_send_limits(&mut v, send_limits.is_some())?;
            send_limits = send_limits.or(limits);
            Some(voice_config(
                v,
                twilio.as_ref(),
                callbacks.as_ref().map(|c| c.public_url.as_str()),
            )?)
        }
    };
    let send_limits = send_limits.unwrap_or(DeliveryConfig::default().send_limits);
    Ok(DeliveryConfig {
        phone,
        send_limits,
        sms,
        voice,
        twilio,
        http_sms,
        callbacks,
    })
}

fn phone_config(raw: RawPhone) -> Result<PhoneConfig, ConfigError> {
    let RawPhone {
        sources,
        default_country_code,
        allowed_country_codes,
    } = raw;
    let sources_given = sources.is_some();
    // Only numbers an admin stored, unless the file says otherwise: directory attributes
    // are often the user's own to edit (see conf/radmfa.toml, [phone]).
    let sources = sources.unwrap_or_else(|| vec!["store".into()]);
    // Empty, no number is ever used: `user set-phone` answered "phone set" and every text
    // or call was "cannot be used here", with `config check` saying ok.
    if sources.is_empty() {
        return Err(ConfigError::invalid(
            "phone.sources",
            "must name at least one source: \"store\" (numbers set with user set-phone), \
             \"mobile\" or \"telephone\" (the directory's); leave it out for [\"store\"]",
        ));
    }
    let mut out = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        out.push(super::one_of(
            format!("phone.sources[{i}]"),
            s,
            &[
                ("store", PhoneSource::Store),
                ("mobile", PhoneSource::Mobile),
                ("telephone", PhoneSource::Telephone),
            ],
        )?);
    }
    let country_code = |key: String, raw: &str| {
        let cc = raw.trim_start_matches('+').to_string();
        if cc.is_empty()
            || cc.len() > 3
            || !cc.bytes().all(|b| b.is_ascii_digit())
            || cc.starts_with('0')
        {
            return Err(ConfigError::invalid(
                key,
                "must be 1 to 3 digits not starting with 0, e.g. \"49\" or \"1\"",
            ));
        }
        // Numbers are matched by prefix: "4" or "35", a digit short, allowed every +4x or
        // +35x country, unnoticed (and a default of either made every national number a
        // wrong one).
        let number = format!("{cc}0000000");
        let whole = crate::delivery::phone::country_code(&number);
        if whole != cc {
            return Err(ConfigError::invalid(
                key,
                format!(
                    "{cc:?} is not a country code: numbers starting {cc} have the {}-digit \
                     country code {whole:?}{}",
                    whole.len(),
                    if whole.len() > cc.len() {
                        " and its neighbours (e.g. \"353\" for Ireland, not \"35\")"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(cc)
    };
    let cc = match default_country_code.as_str() {
        "" => String::new(),
        given => country_code("phone.default_country_code".into(), given)?,
    };
    let mut allowed = Vec::new();
    for (i, raw) in allowed_country_codes.iter().enumerate() {
        let code = country_code(format!("phone.allowed_country_codes[{i}]"), raw)?;
        // Country codes are a prefix code: "1" and "12" cannot both be country codes, so
        // one given inside another is a typo.
        if let Some(other) = allowed
            .iter()
            .find(|o: &&String| o.starts_with(&code) || code.starts_with(o.as_str()))
        {
            return Err(ConfigError::invalid(
                format!("phone.allowed_country_codes[{i}]"),
                format!(
                    "{code:?} and {other:?} cannot both be country codes (one begins the other)"
                ),
            ));
        }
        allowed.push(code);
    }
    if !cc.is_empty() && !allowed.is_empty() && !allowed.contains(&cc) {
        return Err(ConfigError::invalid(
            "phone.allowed_country_codes",
            format!(
                "does not list default_country_code {cc:?}: national numbers could not be used"
            ),
        ));
    }
    Ok(PhoneConfig {
        sources: out,
        sources_given,
        default_country_code: cc,
        allowed_country_codes: allowed,
    })
}

/// The send limits named in `[voice]` (taken out of it), for a setup with calls and no
/// `[sms]`; with `[sms]` present they belong there, where they count SMS and calls together.
fn voice_send_limits(
    v: &mut RawVoice,
    sms_present: bool,
) -> Result<Option<SendLimits>, ConfigError> {
    let given = [
        ("voice.max_per_user", v.max_per_user.is_some()),
        ("voice.max_per_nas", v.max_per_nas.is_some()),
        ("voice.window_secs", v.window_secs.is_some()),
        (
            "voice.max_per_user_per_day",
            v.max_per_user_per_day.is_some(),
        ),
    ];
    let Some((key, _)) = given.iter().find(|(_, set)| *set) else {
        return Ok(None);
    };
    if sms_present {
        return Err(ConfigError::invalid(
            *key,
            "[sms] is present and its send limits count SMS and calls together: set this \
             there",
        ));
    }
    send_limits(
        "voice",
        v.max_per_user
            .take()
            .unwrap_or_else(super::raw_delivery::d_per_user),
        v.max_per_nas
            .take()
            .unwrap_or_else(super::raw_delivery::d_per_nas),
        v.window_secs
            .take()
            .unwrap_or_else(super::raw_delivery::d_window),
        v.max_per_user_per_day
            .take()
            .unwrap_or_else(super::raw_delivery::d_per_user_per_day),
    )
    .map(Some)
}

fn send_limits(
    section: &str,
    max_per_user: u32,
    max_per_nas: u32,
    window_secs: u64,
    max_per_user_per_day: u32,
) -> Result<SendLimits, ConfigError> {
    range(&format!("{section}.max_per_user"), max_per_user, 1, 1000)?;
    range(&format!("{section}.max_per_nas"), max_per_nas, 1, 1_000_000)?;
    // Send events are kept a day (store purge), so a longer window would undercount.
    range(&format!("{section}.window_secs"), window_secs, 10, 86_400)?;
    range(
        &format!("{section}.max_per_user_per_day"),
        max_per_user_per_day,
        1,
        10_000,
    )?;
    Ok(SendLimits {
        max_per_user,
        max_per_nas,
        window: Duration::from_secs(window_secs),
        max_per_user_per_day,
    })
}

fn sms_config(raw: RawSms) -> Result<(SmsConfig, SendLimits), ConfigError> {
    let RawSms {
        provider,
        code_length,
        code_ttl_secs,
        message,
        max_per_user,
        max_per_nas,
        window_secs,
        max_per_user_per_day,
    } = raw;
    let provider = super::one_of(
        "sms.provider",
        &provider,
        &[("twilio", SmsProvider::Twilio), ("http", SmsProvider::Http)],
    )?;
    range("sms.code_length", code_length, 4, 10)?;
    range("sms.code_ttl_secs", code_ttl_secs, 1, 3600)?;
    if !message.contains("{code}") || message.len() > 480 {
        return Err(ConfigError::invalid(
            "sms.message",
            "must contain {code} and be at most 480 bytes",
        ));
    }
    let limits = send_limits(
        "sms",
        max_per_user,
        max_per_nas,
        window_secs,
        max_per_user_per_day,
    )?;
    let sms = SmsConfig {
        provider,
        code_length,
        code_ttl: Duration::from_secs(code_ttl_secs),
        message,
    };
    Ok((sms, limits))
}

fn voice_config(
    raw: RawVoice,
    twilio: Option<&TwilioConfig>,
    public_url: Option<&str>,
) -> Result<VoiceConfig, ConfigError> {
    let RawVoice {
        provider,
        caller_id,
        fraud_digits,
        ring_timeout_secs,
        call_lifetime_secs,
        greeting,
        // Taken out by `voice_send_limits`.
        max_per_user: _,
        max_per_nas: _,
        window_secs: _,
        max_per_user_per_day: _,
    } = raw;
    if provider != "twilio" {
        return Err(ConfigError::invalid(
            "voice.provider",
            format!("{provider:?}: only \"twilio\" can place calls"),
        ));
    }
    let Some(twilio) = twilio else {
        return Err(ConfigError::invalid(
            "voice.provider",
            "\"twilio\" needs a [twilio] section",
        ));
    };
    let Some(public_url) = public_url else {
        return Err(ConfigError::invalid(
            "voice.provider",
            "calls report back over HTTP: add a [callbacks] section",
        ));
    };
    let caller_id = caller_id.unwrap_or_else(|| twilio.from.clone());
    if !is_e164(&caller_id) {
        return Err(ConfigError::invalid(
            "voice.caller_id",
            format!("{caller_id:?} is not an E.164 number such as \"+15550001111\""),
        ));
    }
    if fraud_digits.is_empty()
        || fraud_digits.len() > 8
        || !fraud_digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*')
    {
        return Err(ConfigError::invalid(
            "voice.fraud_digits",
            "must be 1 to 8 keypad digits (0-9, *), e.g. \"0\"",
        ));
    }
    range("voice.ring_timeout_secs", ring_timeout_secs, 5, 120)?;
    range("voice.call_lifetime_secs", call_lifetime_secs, 10, 600)?;
    // A call still ringing after its lifetime could be answered, and its key pressed, for
    // nothing: the approval would come too late to count.
    if ring_timeout_secs >= call_lifetime_secs {
        return Err(ConfigError::invalid(
            "voice.ring_timeout_secs",
            format!(
                "{ring_timeout_secs} s is not shorter than voice.call_lifetime_secs \
                 ({call_lifetime_secs} s): the phone would ring after an answer can count"
            ),
        ));
    }
    let greeting = greeting.unwrap_or_else(|| super::raw_delivery::default_greeting(&fraud_digits));
    if greeting.trim().is_empty() || greeting.len() > 1000 {
        return Err(ConfigError::invalid(
            "voice.greeting",
            "must be 1 to 1000 bytes",
        ));
    }
    // Twilio refuses a call whose inline TwiML is longer (error 32018), so every call would
    // fail; the greeting's quotes and ampersands grow when escaped for XML.
    let longest = crate::mfa::voice::call_twiml(
        &greeting,
        &format!("{public_url}/twilio/voice/{}/gather", "0".repeat(32)),
    );
    if longest.chars().count() > crate::mfa::voice::MAX_TWIML_CHARS {
        return Err(ConfigError::invalid(
            "voice.greeting",
            format!(
                "makes the call's TwiML {} characters long (with callbacks.public_url and \
                 XML escaping); Twilio takes at most {}: shorten it",
                longest.chars().count(),
                crate::mfa::voice::MAX_TWIML_CHARS
            ),
        ));
    }
    Ok(VoiceConfig {
        caller_id,
        fraud_digits,
        ring_timeout: Duration::from_secs(ring_timeout_secs),
        call_lifetime: Duration::from_secs(call_lifetime_secs),
        greeting,
    })
}

fn twilio_config(raw: RawTwilio, base: &Path) -> Result<TwilioConfig, ConfigError> {
    let RawTwilio {
        account_sid,
        auth_token,
        auth_token_file,
        from,
        api_url,
        timeout_ms,
    } = raw;
    if !(account_sid.starts_with("AC") && account_sid.len() == 34) {
        return Err(ConfigError::invalid(
            "twilio.account_sid",
            "must be the 34-character Account SID starting with AC",
        ));
    }
    let auth_token = required_secret("twilio.auth_token", auth_token, auth_token_file, base)?;
    if !is_e164(&from) {
        return Err(ConfigError::invalid(
            "twilio.from",
            format!("{from:?} is not an E.164 number such as \"+15550001111\""),
        ));
    }
    url_key("twilio.api_url", &api_url)?;
    api_url_shape(&api_url)?;
    // The SMS is sent while the NAS waits for the challenge: stay below its retransmit
    // interval (3 s for NPS).
    range("twilio.timeout_ms", timeout_ms, 100, 10_000)?;
    Ok(TwilioConfig {
        account_sid,
        auth_token,
        from,
        api_url: api_url.trim_end_matches('/').to_string(),
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn http_sms_config(raw: RawHttpSms, base: &Path) -> Result<HttpSmsConfig, ConfigError> {
    let RawHttpSms {
        url,
        method,
        headers,
        body,
        encoding,
        content_type,
        auth,
        username,
        password,
        password_file,
        token,
        token_file,
        success_status,
        success_body_contains,
        timeout_ms,
    } = raw;
    url_key("http_sms.url", &url)?;
    known_placeholders("http_sms.url", &url)?;
    known_placeholders("http_sms.body", &body)?;
    for (name, value) in &headers {
        known_placeholders(&format!("http_sms.headers.{name}"), value)?;
    }
    let method = method.to_ascii_uppercase();
    if !["GET", "POST", "PUT"].contains(&method.as_str()) {
        return Err(ConfigError::invalid(
            "http_sms.method",
            format!("{method:?} is not one of GET, POST, PUT"),
        ));
    }
    // A GET sends no body (`delivery::http`): what is only in it would never reach the
    // gateway, which would be asked to send nothing to nobody, and may answer 200.
    if method == "GET" && !body.is_empty() {
        return Err(ConfigError::invalid(
            "http_sms.body",
            "method = \"GET\" sends no body: put {phone} and {message} (or {code}) in the \
             url, or use POST",
        ));
    }
    if !url.contains("{phone}") && !body.contains("{phone}") {
        return Err(ConfigError::invalid(
            "http_sms.body",
            "the url or the body must contain {phone}",
        ));
    }
    if !url.contains("{code}")
        && !url.contains("{message}")
        && !body.contains("{code}")
        && !body.contains("{message}")
    {
        return Err(ConfigError::invalid(
            "http_sms.body",
            "the url or the body must contain {code} or {message}",
        ));
    }
    let (encoding, default_type) = super::one_of(
        "http_sms.encoding",
        &encoding,
        &[
            (
                "form",
                (TemplateEncoding::Form, "application/x-www-form-urlencoded"),
            ),
            ("json", (TemplateEncoding::Json, "application/json")),
            ("none", (TemplateEncoding::None, "text/plain")),
        ],
    )?;
    // Credentials the chosen `auth` does not send would be dropped without a word, and the
    // gateway asked without them: refuse the mismatch instead.
    let given = |set: &[(&str, bool)]| -> Option<String> {
        set.iter().find(|(_, on)| *on).map(|(k, _)| k.to_string())
    };
    let basic_keys = [
        ("username", username.is_some()),
        ("password", password.is_some()),
        ("password_file", password_file.is_some()),
    ];
    let bearer_keys = [
        ("token", token.is_some()),
        ("token_file", token_file.is_some()),
    ];
    let unused = match auth.as_str() {
        "basic" => given(&bearer_keys),
        "bearer" => given(&basic_keys),
        _ => given(&basic_keys).or_else(|| given(&bearer_keys)),
    };
    if let Some(k) = unused {
        return Err(ConfigError::invalid(
            "http_sms.auth",
            format!(
                "is {auth:?}, which does not send http_sms.{k}: set auth = \"basic\" (username, \
                 password) or \"bearer\" (token), or remove {k}"
            ),
        ));
    }
    let auth = match auth.as_str() {
        "none" => HttpAuth::None,
        "basic" => HttpAuth::Basic {
            username: username.ok_or_else(|| {
                ConfigError::invalid("http_sms.username", "missing: auth = \"basic\" needs it")
            })?,
            password: required_secret("http_sms.password", password, password_file, base)?,
        },
        "bearer" => HttpAuth::Bearer(bearer_token(
            required_secret("http_sms.token", token, token_file.clone(), base)?,
            token_file.is_some(),
        )?),
        other => {
            return Err(ConfigError::invalid(
                "http_sms.auth",
                format!("{other:?} is not one of \"none\", \"basic\", \"bearer\""),
            ))
        }
    };
    for (name, value) in &headers {
        header_key(name, value)?;
        // These two radmfa sets itself (Content-Type when it sends a body); reqwest adds a
        // configured one beside it, and a strict gateway refuses a request with two.
        if name.eq_ignore_ascii_case("content-type") && method != "GET" && !body.is_empty() {
            return Err(ConfigError::invalid(
                format!("http_sms.headers.{name}"),
                "is set from http_sms.content_type (and encoding): set it there",
            ));
        }
        if name.eq_ignore_ascii_case("authorization") && !matches!(auth, HttpAuth::None) {
            return Err(ConfigError::invalid(
                format!("http_sms.headers.{name}"),
                "would be sent beside the one http_sms.auth makes: remove one of them",
            ));
        }
    }
    let authorization_header = headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("authorization"));
    http_url_userinfo(&url, &auth, authorization_header)?;
    for (i, &s) in success_status.iter().enumerate() {
        // A 4xx or 5xx is the gateway refusing or failing: taken as success, an SMS it
        // never sent would count as sent, and the user would wait for a code that is not
        // coming. A 1xx is never a final answer.
        if !(200..=399).contains(&s) {
            return Err(ConfigError::invalid(
                format!("http_sms.success_status[{i}]"),
                format!(
                    "{s} is not a success: list statuses from 200 to 399 (a 4xx or 5xx is \
                     the gateway refusing or failing the send)"
                ),
            ));
        }
    }
    range("http_sms.timeout_ms", timeout_ms, 100, 10_000)?;
    Ok(HttpSmsConfig {
        url,
        method,
        headers: headers.into_iter().collect(),
        body,
        encoding,
        content_type: content_type.unwrap_or_else(|| default_type.into()),
        auth,
        success_status,
        success_body_contains,
        timeout: Duration::from_millis(timeout_ms),
    })
}

fn callbacks_config(raw: RawCallbacks) -> Result<CallbacksConfig, ConfigError> {
    let RawCallbacks { listen, public_url } = raw;
    let listen = listen.parse().map_err(|_| {
        ConfigError::invalid(
            "callbacks.listen",
            format!("{listen:?} is not an address:port"),
        )
    })?;
    let listen = super::validate::not_v4_mapped("callbacks.listen", listen)?;
    url_key("callbacks.public_url", &public_url)?;
    public_url_shape(&public_url)?;
    Ok(CallbacksConfig {
        listen,
        public_url: public_url.trim_end_matches('/').to_string(),
    })
}

/// Validates one client's factor keys; `key` names them (`client[2].voice_mode`).
pub fn client_factors(
    raw: RawClientFactors,
    key: &dyn Fn(&str) -> String,
) -> Result<ClientFactors, ConfigError> {
    let RawClientFactors {
        methods,
        voice_mode,
        voice_budget_secs,
        app_passwords,
        second_factor_only,
        provider_failure,
        remember_second_factor_secs,
        exempt_networks,
    } = raw;
    let provider_failure = super::one_of(
        key("provider_failure"),
        &provider_failure,
        &[
            ("reject", ProviderFailure::Reject),
            ("allow", ProviderFailure::Allow),
        ],
    )?;
    let mut parsed = Vec::new();
    for m in &methods {
        let method = Method::parse(m).ok_or_else(|| {
            ConfigError::invalid(
                key("methods"),
                format!("{m:?} is not one of \"totp\", \"sms\", \"voice\""),
            )
        })?;
        if !parsed.contains(&method) {
            parsed.push(method);
        }
    }
    if parsed.is_empty() {
        return Err(ConfigError::invalid(key("methods"), "must not be empty"));
    }
    let voice_mode = super::one_of(
        key("voice_mode"),
        &voice_mode,
        &[
            ("hold", VoiceMode::Hold),
            ("challenge", VoiceMode::Challenge),
        ],
    )?;
    range(
        &key("voice_budget_secs"),
        voice_budget_secs,
        3,
        super::delivery::MAX_VOICE_BUDGET_SECS,
    )?;
    if second_factor_only {
        // RD Gateway's client cannot show a prompt: only a held call can finish the login.
        if voice_mode != VoiceMode::Hold || !parsed.contains(&Method::Voice) {
            return Err(ConfigError::invalid(
                key("second_factor_only"),
                "needs methods to include \"voice\" and voice_mode = \"hold\" \
                 (the client cannot show a prompt)",
            ));
        }
        // The gateway sends no password (NPS checked it), so no app password can come
        // through it: accepted, `config check` warned that app passwords replace both
        // factors there, and counted them as a way in.
        if app_passwords {
            return Err(ConfigError::invalid(
                key("app_passwords"),
                "has no effect with second_factor_only = true: the gateway sends no \
                 password, so no app password can be typed through it; remove it",
            ));
        }
    }
    // Longer than a day is a standing exemption: that is `exempt_groups`.
    let remember = match remember_second_factor_secs {
        0 => None,
        secs if secs <= MAX_REMEMBER_SECS => Some(Duration::from_secs(secs)),
        secs => {
            return Err(ConfigError::invalid(
                key("remember_second_factor_secs"),
                format!(
                    "{secs} is more than a day ({MAX_REMEMBER_SECS}); for users who should \
                     never need a second factor, use exempt_groups"
                ),
            ))
        }
    };
    let exempt_networks = exempt_networks
        .iter()
        .enumerate()
        .map(|(j, n)| exact_network(&key(&format!("exempt_networks[{j}]")), n))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ClientFactors {
        methods: parsed,
        voice_mode,
        voice_budget: Duration::from_secs(voice_budget_secs),
        app_passwords,
        second_factor_only,
        provider_failure,
        remember,
        exempt_networks,
    })
}

/// The longest `remember_second_factor_secs`: a day.
pub const MAX_REMEMBER_SECS: u64 = 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(default: &str, allowed: &[&str]) -> Result<PhoneConfig, String> {
        phone_config(RawPhone {
            sources: None,
            default_country_code: default.into(),
            allowed_country_codes: allowed.iter().map(|s| s.to_string()).collect(),
        })
        .map_err(|e| e.to_string())
    }

    /// An RD Gateway client (second_factor_only) sends no password, so app passwords can
    /// never be typed through it: refused by key. `config check` warned that they replace
    /// both factors there, and counted them as a way in.
    #[test]
    fn app_passwords_on_a_second_factor_only_client_are_refused() {
        let raw = |app_passwords| RawClientFactors {
            methods: vec!["voice".into()],
            voice_mode: "hold".into(),
            voice_budget_secs: 60,
            app_passwords,
            second_factor_only: true,
            provider_failure: "reject".into(),
            remember_second_factor_secs: 0,
            exempt_networks: Vec::new(),
        };
        let key = |k: &str| format!("client[0].{k}");
        assert!(client_factors(raw(false), &key).is_ok());
        let e = client_factors(raw(true), &key).unwrap_err().to_string();
        assert!(
            e.contains("client[0].app_passwords") && e.contains("no effect"),
            "{e}"
        );
    }

    /// Twilio's base URL only: radmfa appends the API's path to it as a string, so that
    /// path there doubled it, a query or fragment swallowed it, and user information sent a
    /// second Authorization. `config check` said ok to each.
    #[test]
    fn twilio_api_url_is_a_base_url() {
        for ok in [
            "https://api.twilio.com",
            "https://api.twilio.com/",
            "http://127.0.0.1:8080",
            // A gateway behind a path prefix.
            "https://gw.example.org/twilio/",
        ] {
            assert_eq!(api_url_shape(ok).map_err(|e| e.to_string()), Ok(()), "{ok}");
        }
        for (bad, said) in [
            ("https://api.twilio.com/?x=1", "query or fragment"),
            ("https://api.twilio.com#top", "query or fragment"),
            ("https://api.twilio.com/2010-04-01", "the API's path"),
            (
                "https://gw.example.org/2010-04-01/Accounts",
                "the API's path",
            ),
            ("https://u:p@api.twilio.com", "user name or password"),
            ("https://u@api.twilio.com", "user name or password"),
        ] {
            let e = api_url_shape(bad).unwrap_err().to_string();
            assert!(
                e.contains("twilio.api_url") && e.contains(said),
                "{bad}: {e}"
            );
            assert!(!e.contains("u:p"), "{e}");
        }
    }

    /// A `user:password@` in the gateway's url is Basic authentication: alone it is kept
    /// (and works); beside `auth` or an Authorization header it made a second one.
    #[test]
    fn http_sms_url_user_information_is_one_authorization_only() {
        let url = "https://radmfa:s3cret@sms.example.org/send?to={phone}";
        assert!(http_url_userinfo(url, &HttpAuth::None, false).is_ok());
        let bearer = HttpAuth::Bearer(crate::secret::Secret::new(b"t".to_vec()));
        for (auth, header, said) in [
            (&bearer, false, "http_sms.auth"),
            (&HttpAuth::None, true, "an Authorization header"),
        ] {
            let e = http_url_userinfo(url, auth, header)
                .unwrap_err()
                .to_string();
            assert!(e.contains("http_sms.url") && e.contains(said), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        // Without user information, anything else goes: a path and a query are the
        // gateway's.
        let plain = "https://sms.example.org/api/send?key=abc&to={phone}";
        assert!(http_url_userinfo(plain, &bearer, true).is_ok());
    }

    #[test]
    fn allowed_country_codes_are_country_codes() {
        let ok = phone("+49", &["+49", "43", "1"]).unwrap();
        assert_eq!(ok.allowed_country_codes, ["49", "43", "1"]);
        assert_eq!(ok.default_country_code, "49");
        for (allowed, said) in [
            (&["049"][..], "phone.allowed_country_codes[0]"),
            (&["49", "4x"][..], "phone.allowed_country_codes[1]"),
            (&["49", ""][..], "phone.allowed_country_codes[1]"),
            (&["49", "49"][..], "cannot both be country codes"),
            // A digit short or one too many: a prefix of several countries, or of none.
            (&["1", "12"][..], "\"12\" is not a country code"),
            (&["4"][..], "\"4\" is not a country code"),
            (&["35"][..], "the 3-digit country code \"350\""),
            (&["491"][..], "the 2-digit country code \"49\""),
        ] {
            let e = phone("", allowed).unwrap_err();
            assert!(e.contains(said), "{allowed:?}: {e}");
        }
        let e = phone("44", &["49"]).unwrap_err();
        assert!(e.contains("does not list default_country_code"), "{e}");
        assert!(phone("", &[]).unwrap().allowed_country_codes.is_empty());
    }
}
