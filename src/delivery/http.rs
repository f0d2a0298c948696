//! `HttpSms`: any SMS gateway with an HTTP API. The URL, body and headers are templates with
//! `{phone}`, `{code}` and `{message}`; values are percent-encoded in the URL and encoded for
//! the body as configured (form, JSON string, or as-is). Success is a status (any 2xx, or the
//! listed ones) and, if configured, a substring of the response body.

use async_trait::async_trait;

use super::{http_client, CodeSender, ProviderError};
use crate::config::delivery::{HttpAuth, HttpSmsConfig, TemplateEncoding};
use crate::secret::Secret;

const NAME: &str = "http sms";

pub struct HttpSms {
    cfg: HttpSmsConfig,
    client: Result<reqwest::Client, String>,
}

impl HttpSms {
    pub fn new(cfg: HttpSmsConfig) -> Self {
        let client = http_client(cfg.timeout);
        HttpSms { cfg, client }
    }
}

/// Fills `{phone}`, `{code}`, `{message}` in one pass, so a value that itself contains a
/// placeholder is never expanded again.
pub fn render(template: &str, values: &[(&str, &str)], encode: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'outer: while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        for (name, value) in values {
            let ph = format!("{{{name}}}");
            if after.starts_with(&ph) {
                out.push_str(&encode(value));
                rest = &after[ph.len()..];
                continue 'outer;
            }
        }
        out.push('{');
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

/// For a form body (application/x-www-form-urlencoded): a space is `+`.
pub fn percent(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Everything but RFC 3986's unreserved characters, percent-encoded.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// For a value in the url: a space is `%20`, which every decoder reads as a space (a `+`
/// is a space only to form-style query decoders, and a plus sign in a path).
pub fn percent_in_url(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, URL_VALUE).to_string()
}

/// The inside of a JSON string (the template supplies the quotes).
pub fn json_inner(v: &str) -> String {
    let quoted = serde_json::to_string(v).unwrap_or_default();
    quoted[1..quoted.len().saturating_sub(1)].to_string()
}

#[async_trait]
impl CodeSender for HttpSms {
    async fn send_sms(
        &self,
        to: &str,
        text: &Secret,
        code: &Secret,
    ) -> Result<Option<String>, ProviderError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| ProviderError::Setup(e.clone()))?;
        let c = &self.cfg;
        let values = [
            ("phone", to),
            ("code", code.expose_str().unwrap_or_default()),
            ("message", text.expose_str().unwrap_or_default()),
        ];
        let url = render(&c.url, &values, percent_in_url);
        let body = self.rendered_body(&values);
        let method = reqwest::Method::from_bytes(c.method.as_bytes())
            .map_err(|e| ProviderError::Setup(format!("http_sms.method: {e}")))?;
        let mut rb = client.request(method.clone(), &url);
        for (k, v) in &c.headers {
            rb = rb.header(k, render(v, &values, str::to_string));
        }
        rb = match &c.auth {
            HttpAuth::None => rb,
            HttpAuth::Basic { username, password } => {
                rb.basic_auth(username, password.expose_str().map(str::to_string))
            }
            HttpAuth::Bearer(t) => rb.bearer_auth(t.expose_str().unwrap_or_default()),
        };
        if method != reqwest::Method::GET && !c.body.is_empty() {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, &c.content_type)
                .body(body);
        }
        let ms = c.timeout.as_millis() as u64;
        let resp = rb
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(NAME, ms, e))?;
        let status = resp.status().as_u16();
        let body = super::read_body(resp, NAME, ms).await;
        let text = String::from_utf8_lossy(&body.bytes);
        let status_ok = if c.success_status.is_empty() {
            (200..300).contains(&status)
        } else {
            c.success_status.contains(&status)
        };
        if !status_ok {
            return Err(ProviderError::Status {
                provider: NAME,
                status,
                detail: body.detail(|text, cut| self.shown(text, &values, cut)),
                // A gateway's own error codes are unknown: any refusal may pass.
                refused_number: None,
            });
        }
        if !c.success_body_contains.is_empty() && !text.contains(&c.success_body_contains) {
            return Err(ProviderError::NotAccepted {
                provider: NAME,
                detail: format!("no {:?} in the response", c.success_body_contains),
            });
        }
        Ok(None)
    }
}

/// `config check --connect`: the gateway's server reached the way a send reaches it (DNS,
/// the egress proxy if the environment names one, TLS with the certificate checked) by an
/// `OPTIONS` request to its root. Nothing is sent: the request carries no number, code,
/// key or credential, and a gateway that sends on a `GET` is not asked for one. Returns the
/// origin reached (scheme, host and port: no path or query, which may hold a key), the
/// status it answered, and, for an error answered by a proxy that says so (Squid's
/// `X-Squid-Error`, RFC 9209's `Proxy-Status`), what the proxy said: an allowlisting egress
/// proxy refuses with a 403, which is no answer from the gateway (review).
pub async fn reach(cfg: &HttpSmsConfig) -> Result<(String, u16, Option<String>), ProviderError> {
    let url = render(&cfg.url, &[], str::to_string);
    let origin = reqwest::Url::parse(&url)
        .map_err(|e| ProviderError::Setup(format!("{NAME}: the url does not parse: {e}")))?
        .origin();
    if !origin.is_tuple() {
        return Err(ProviderError::Setup(format!(
            "{NAME}: the url names no server"
        )));
    }
    let origin = origin.ascii_serialization();
    let client = http_client(cfg.timeout).map_err(ProviderError::Setup)?;
    let ms = cfg.timeout.as_millis() as u64;
    let resp = client
        .request(reqwest::Method::OPTIONS, format!("{origin}/"))
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(NAME, ms, e))?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    // Proxy-Status with `received-status` says the next hop answered (a CDN in front of
    // the gateway passing on the gateway's own 405): reached. With `error=` and none, the
    // proxy answered for itself (review).
    // The last member is the proxy nearest radmfa, the one that answered (RFC 9209):
    // `shield; received-status=200, edge; error=http_request_denied` is the edge's refusal.
    let proxy_status = header("proxy-status")
        .map(|v| v.rsplit(',').next().unwrap_or_default().to_string())
        .filter(|last| last.contains("error=") && !last.contains("received-status"));
    let proxy_said = header("x-squid-error")
        .or(proxy_status)
        .filter(|_| status >= 400)
        .map(|v| snippet(&v, &[]));
    Ok((origin, status, proxy_said))
}

/// Literals of the body template shorter than this, and of letters only, are hidden only
/// where they stand as a word of their own: "text" in `{"type":"text"}` blanked inside
/// every word of an echoed error ("con***" for "context") garbled the diagnosis. Longer
/// ones, and those with a digit or a sign (a short password, `Pw12`), are hidden wherever
/// they appear.
const SHORT_LITERAL: usize = 8;

impl HttpSms {
    /// The request's body, filled in and encoded as configured.
    fn rendered_body(&self, values: &[(&str, &str)]) -> String {
        let c = &self.cfg;
        match c.encoding {
            TemplateEncoding::Form => render(&c.body, values, percent),
            TemplateEncoding::Json => render(&c.body, values, json_inner),
            TemplateEncoding::None => render(&c.body, values, str::to_string),
        }
    }

    /// An answer's body for the audit reason: [`snippet`] with what the request carried
    /// blanked out (see [`Self::credentials`]).
    /// `cut`: the body was cut off in transport, and a value it ends in the middle of is
    /// hidden too (see [`without_cut_value`]).
    fn shown(&self, body: &str, values: &[(&str, &str)], cut: bool) -> String {
        // Read as the gateway's escaping meant it: HTML's and XML's entities, JSON's `\u`
        // escapes (Go's `\u0026`, .NET's `\u002B`) each hid a token from the masking
        // (review); what is shown is the decoded text.
        let body = &unescape_echo(body);
        let (anywhere, words) = self.credentials(values);
        if cut {
            let all: Vec<String> = anywhere.iter().chain(&words).cloned().collect();
            return snippet_words(&without_cut_value(body, &all), &anywhere, &words);
        }
        snippet_words(body, &anywhere, &words)
    }

    /// What must not reach the audit reason or the log if the gateway echoes the request:
    /// the code and message, the credentials, every header value (API keys often travel in
    /// one), the URL's query values (or in the query) and the body template's literals.
    /// Hidden anywhere, and (the short literals) as whole words.
    fn credentials(&self, values: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
        let c = &self.cfg;
        let mut out: Vec<String> = values
            .iter()
            .filter(|(name, _)| *name != "phone")
            .map(|(_, v)| v.to_string())
            .collect();
        match &c.auth {
            HttpAuth::None => {}
            HttpAuth::Basic { username, password } => {
                let password = password.expose_str().unwrap_or_default();
                out.push(password.to_string());
                out.push(super::basic_credential(username, password));
            }
            HttpAuth::Bearer(t) => out.push(t.expose_str().unwrap_or_default().to_string()),
        }
        for (_, v) in &c.headers {
            // The whole value, and its words: `Authorization: App <key>` may be echoed as
            // the key alone.
            let rendered = render(v, values, str::to_string);
            out.extend(rendered.split_whitespace().map(str::to_string));
            out.push(rendered);
        }
        let (path, query) = c.url.split_once('?').unwrap_or((&c.url, ""));
        // Query values decoded, and as written.
        out.extend(
            form_urlencoded::parse(query.as_bytes())
                .map(|(_, v)| v.into_owned())
                .chain(
                    query
                        .split('&')
                        .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_string())),
                )
                .filter(|v| !v.contains('{')),
        );
        out.extend(userinfo(path));
        out.extend(env_proxy_credentials());
        out.extend(path_keys(path));
        // The whole body in base64, as a gateway that logs or echoes it so shows it.
        let body = self.rendered_body(values);
        if !body.is_empty() {
            use base64::engine::general_purpose::{
                STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
            };
            use base64::Engine;
            for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
                out.push(engine.encode(body.as_bytes()));
            }
        }
        let (short, long): (Vec<String>, Vec<String>) = body_literals(&c.body, c.encoding)
            .into_iter()
            .partition(|v| v.chars().count() < SHORT_LITERAL && v.chars().all(char::is_alphabetic));
        out.extend(long);
        // As the request carried them, too: percent-encoded or escaped for JSON.
        let with_encoded = |mut out: Vec<String>| {
            let mut encoded: Vec<String> = out.iter().flat_map(|v| echoed_forms(v)).collect();
            encoded.sort();
            encoded.dedup();
            encoded.retain(|e| !out.contains(e));
            out.extend(encoded);
            out
        };
        (with_encoded(out), with_encoded(short))
    }
}

/// `text` (cut off in transport) with the start of a hidden value it ends in, 4 characters
/// of it or more, replaced: the rest of the value never came, and masking whole values does
/// not find a part (review: a literal of several words, cut, showed all but its last).
fn without_cut_value(text: &str, hidden: &[String]) -> String {
    let text = text.trim_end();
    let longest = hidden
        .iter()
        .flat_map(|v| {
            v.char_indices()
                .skip(4)
                .map(|(end, _)| &v[..end])
                .filter(|prefix| text.ends_with(prefix))
                .collect::<Vec<_>>()
        })
        .map(str::len)
        .max();
    match longest {
        Some(n) => format!("{}***", &text[..text.len() - n]),
        None => text.to_string(),
    }
}

/// `text` with the escapes a gateway's echo may use decoded, once: JSON's `\uXXXX` (a
/// surrogate pair as one character) and `\/`, and HTML's and XML's entities (`&amp;`,
/// `&lt;`, `&#39;`, `&#x2B;`, …). Anything else stays as it is.
fn unescape_echo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['\\', '&']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some((c, used)) = json_escape(rest).or_else(|| entity(rest)) {
            out.push(c);
            rest = &rest[used..];
        } else {
            out.push_str(&rest[..1]);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A JSON escape at the start of `s` (`\uXXXX`, a surrogate pair, `\/`): the character and
/// the bytes it took.
fn json_escape(s: &str) -> Option<(char, usize)> {
    if s.starts_with("\\/") {
        return Some(('/', 2));
    }
    let unit = |s: &str| -> Option<u16> {
        let hex = s.strip_prefix("\\u")?.get(..4)?;
        u16::from_str_radix(hex, 16).ok()
    };
    let first = unit(s)?;
    if let Some(c) = char::from_u32(u32::from(first)) {
        return Some((c, 6));
    }
    let second = unit(s.get(6..)?)?;
    char::decode_utf16([first, second])
        .next()?
        .ok()
        .map(|c| (c, 12))
}

/// An HTML or XML entity at the start of `s`: the character and the bytes it took.
fn entity(s: &str) -> Option<(char, usize)> {
    // `&#x1F600;` is the longest this reads.
    let end = s.char_indices().take(12).find(|(_, c)| *c == ';')?.0;
    let name = &s[1..end];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
}

/// `v` as a gateway echoing the request may write it: percent-encoded as a form does (a
/// space as `+`) and as RFC 3986 does (`%20`, `/` kept or not: Python's `quote`), escaped
/// for JSON as serde does, with `/` as `\/` (PHP's `json_encode`) and with what is not
/// ASCII as `\uXXXX` (Python's `json.dumps`), in upper or lower case. Each of these leaked
/// a key, a token or a password literal from echoes (review).
fn echoed_forms(v: &str) -> Vec<String> {
    let json = json_inner(v);
    let ascii_json: String = json
        .chars()
        .flat_map(|c| {
            if c.is_ascii() {
                vec![c.to_string()]
            } else {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect();
    let url = percent_in_url(v);
    let form = percent(v);
    // Percent-encoding in lower-case hex too (.NET's `UrlEncode` writes `%2b`: review).
    let lower_hex = |e: &str| {
        let mut out = String::with_capacity(e.len());
        let mut rest = e;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            let hex = rest.get(at + 1..at + 3).unwrap_or("");
            out.push('%');
            out.push_str(&hex.to_ascii_lowercase());
            rest = &rest[at + 1 + hex.len()..];
        }
        out.push_str(rest);
        out
    };
    vec![
        // A gateway that upper-cases (or lower-cases) what it echoes.
        v.to_uppercase(),
        v.to_lowercase(),
        lower_hex(&form),
        lower_hex(&url.replace("%2F", "/")),
        lower_hex(&url),
        form,
        url.replace("%2F", "/"),
        url,
        json.replace('/', "\\/"),
        ascii_json.replace('/', "\\/"),
        ascii_json,
        json,
    ]
}

/// `https://user:password@host/…`: reqwest sends the pair as Basic authentication, so the
/// password and the header's base64 are hidden as for `auth = "basic"`.
fn userinfo(url_without_query: &str) -> Vec<String> {
    let (authority, _) = authority_and_path(url_without_query);
    let Some((info, _host)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let Some((user, password)) = info.split_once(':') else {
        return Vec::new();
    };
    let basic = super::basic_credential(&decoded(user), &decoded(password));
    vec![password.to_string(), decoded(password), basic]
}

/// The password of each egress proxy named in the environment (`http://user:pw@proxy:3128`)
/// and its Basic header's base64: a proxy that fails may echo the `Proxy-Authorization` it
/// was sent into its error page, which reached the audit reason (red team).
pub(crate) fn proxy_credentials(proxies: impl Iterator<Item = String>) -> Vec<String> {
    proxies
        .flat_map(|p| userinfo(p.split_once('?').map_or(p.as_str(), |(u, _)| u)))
        .collect()
}

/// [`proxy_credentials`] of the proxies this process's environment names.
pub(crate) fn env_proxy_credentials() -> Vec<String> {
    proxy_credentials(
        super::proxy_variables()
            .into_iter()
            .filter_map(|name| std::env::var(name).ok()),
    )
}

/// A URL (without its query) cut after the scheme: the authority, and the path after it.
/// Cut by hand, not parsed: the template's `{placeholders}` must stay as written.
fn authority_and_path(url_without_query: &str) -> (&str, &str) {
    let after_scheme = url_without_query
        .split_once("://")
        .map_or(url_without_query, |(_, rest)| rest);
    after_scheme.split_once('/').unwrap_or((after_scheme, ""))
}

/// Percent-decoded as reqwest decodes URLs ('+' stays '+', unlike a form).
fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Some gateways put the API key in the URL's path (`/api/<key>/send`). A segment of 12 or
/// more characters without a placeholder is treated as one: blanking a long literal word in
/// an echoed request costs the diagnosis nothing.
fn path_keys(url_without_query: &str) -> Vec<String> {
    let (_, path) = authority_and_path(url_without_query);
    // Also a shorter one with a digit in it (`/gw/K8x2pQ7zR1/send`): a key, or a version
    // number ("v2", "2010-04-01") whose blanking costs nothing.
    let key_like = |seg: &str| {
        let n = seg.chars().count();
        n >= 12 || (n >= 6 && seg.chars().any(|c| c.is_ascii_digit()))
    };
    path.split('/')
        .filter(|seg| key_like(seg) && !seg.contains('{'))
        .flat_map(|seg| {
            // As written and percent-decoded: an echo may show either.
            [seg.to_string(), decoded(seg)]
        })
        .collect()
}

/// Literal values written into the body template — an account key, a sender password —
/// which a gateway echoing the request would otherwise show in the audit reason. Form and
/// JSON bodies are parsed for their values; an as-is body is cut into long key-like words.
fn body_literals(template: &str, encoding: TemplateEncoding) -> Vec<String> {
    // Stands for each placeholder while a JSON template is parsed: `"code":{code}` (a
    // number) is JSON only once filled in, and such a template was cut into long words
    // alone, which left a short literal password in the audit reason.
    const FILL: &str = "9081726354";
    fn json_strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if !s.contains('{') && !s.contains(FILL) => {
                out.push(s.clone())
            }
            // A literal number of four digits or more (a PIN, an account number).
            serde_json::Value::Number(n) => {
                let n = n.to_string();
                if n.len() >= 4 && n != FILL {
                    out.push(n);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| json_strings(v, out)),
            _ => {}
        }
    }
    let key_like = || {
        template
            .split(|c: char| !(c.is_alphanumeric() || "-_.~+/=".contains(c)))
            .filter(|w| w.chars().count() >= 12)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    match encoding {
        // Decoded, and as written (the literal part is sent as it stands).
        TemplateEncoding::Form => form_urlencoded::parse(template.as_bytes())
            .map(|(_, v)| v.into_owned())
            .chain(
                template
                    .split('&')
                    .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_string())),
            )
            .filter(|v| !v.contains('{'))
            .collect(),
        TemplateEncoding::Json => {
            let filled = ["{phone}", "{code}", "{message}"]
                .iter()
                .fold(template.to_string(), |t, p| t.replace(p, FILL));
            match serde_json::from_str::<serde_json::Value>(&filled) {
                Ok(v) => {
                    let mut out = Vec::new();
                    json_strings(&v, &mut out);
                    out
                }
                // Not JSON even filled in: every literal value, as for an as-is body.
                Err(_) => {
                    let mut out = key_like();
                    out.extend(as_is_values(template));
                    out
                }
            }
        }
        // As-is (an XML gateway's `<password>Gw7pw-x9</password>`, `key="…"`): every literal
        // value too, however short: an element's text, a quoted value, what follows = or
        // :. Long words alone left an 8-character password in the audit reason.
        TemplateEncoding::None => {
            let mut out = key_like();
            out.extend(as_is_values(template));
            out
        }
    }
}

/// The literal values of an as-is body template: the text between `>` and `<`, quoted
/// values, and what follows `=` or `:` up to the next separator; none holding a
/// placeholder.
fn as_is_values(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut keep = |v: &str| {
        let v = v.trim();
        if !v.is_empty() && !v.contains('{') && !v.contains('}') {
            out.push(v.to_string());
        }
    };
    for (i, part) in template.split('>').enumerate() {
        if i > 0 {
            keep(part.split('<').next().unwrap_or(""));
        }
    }
    for q in ['"', '\''] {
        for (i, part) in template.split(q).enumerate() {
            if i % 2 == 1 {
                keep(part);
            }
        }
    }
    for sep in ['=', ':'] {
        for part in template.split(sep).skip(1) {
            let end = part
                .find(|c: char| c.is_whitespace() || "&;,<>\"'".contains(c))
                .unwrap_or(part.len());
            keep(&part[..end]);
        }
    }
    out
}

/// The start of a response body for the audit reason, with `hidden` blanked out in case
/// the gateway echoes the request. Blanked before it is cut: a code across the cut would
/// otherwise leave its first digits. Values under 4 characters are left: blanking every
/// "1" would blank nothing secret and garble the rest.
/// Longest first: a short value (the code) blanked inside a longer one (a Basic
/// credential's base64) would break it up, and the rest of it would show.
pub(super) fn snippet(body: &str, hidden: &[String]) -> String {
    snippet_words(body, hidden, &[])
}

/// [`snippet`], with `words` blanked too where each stands as a word of its own (no letter,
/// digit or `_` on either side).
fn snippet_words(body: &str, hidden: &[String], words: &[String]) -> String {
    let mut longest_first: Vec<&String> = hidden.iter().collect();
    longest_first.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut s = body.to_string();
    for v in longest_first {
        if v.chars().count() >= 4 {
            s = s.replace(v.as_str(), "***");
        }
    }
    let mut longest_first: Vec<&String> = words.iter().collect();
    longest_first.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for v in longest_first {
        if v.chars().count() >= 4 {
            s = replace_word(&s, v, "***");
        }
    }
    // Control characters (a body's line breaks, an ANSI escape) become spaces: the snippet
    // goes into one log line and one audit field, and a terminal shows both.
    super::phone::mask_numbers(&s)
        .chars()
        .take(160)
        // Format characters too (bidi overrides, zero-width ones), as the admin's output
        // hides them: a gateway could write them as entities, which are now decoded
        // (review).
        .map(|c| if crate::admin::hides(c) { ' ' } else { c })
        .collect()
}

/// `s` with each `word` that no letter, digit or `_` touches on either side replaced. An
/// escape just before it (`%22`, `\n`: an echo percent-encoded or escaped for JSON) is a
/// boundary too, though it ends in a letter or digit. (`\u0022` and entities are decoded
/// before: see [`unescape_echo`].)
fn replace_word(s: &str, word: &str, with: &str) -> String {
    let inside = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(word) {
        out.push_str(&rest[..at]);
        let after = rest[at + word.len()..].chars().next();
        let bounded = (escape_ends(&out) || !inside(out.chars().last())) && !inside(after);
        out.push_str(if bounded { with } else { word });
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` ends with an escape: `%XX`, or a backslash and one letter.
fn escape_ends(text: &str) -> bool {
    let b = text.as_bytes();
    let n = b.len();
    (n >= 3 && b[n - 3] == b'%' && b[n - 2..].iter().all(u8::is_ascii_hexdigit))
        || (n >= 2 && b[n - 2] == b'\\' && b[n - 1].is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_once_and_encodes() {
        let v = [
            ("phone", "+1 555"),
            ("code", "{phone}"),
            ("message", "a&b \"c\""),
        ];
        assert_eq!(
            render("to={phone}&c={code}&m={message}&x={other}", &v, percent),
            "to=%2B1+555&c=%7Bphone%7D&m=a%26b+%22c%22&x={other}"
        );
        assert_eq!(
            render(r#"{"to":"{phone}","text":"{message}"}"#, &v, json_inner),
            r#"{"to":"+1 555","text":"a&b \"c\""}"#
        );
        assert_eq!(render("{", &v, percent), "{");
        // In the url a space is %20: "+" reads as a plus sign to RFC 3986 decoders.
        assert_eq!(
            render("/send/{message}?to={phone}", &v, percent_in_url),
            "/send/a%26b%20%22c%22?to=%2B1%20555"
        );
        assert_eq!(render("ü{phone}ü", &v, str::to_string), "ü+1 555ü");
    }

    fn gateway(auth: HttpAuth) -> HttpSms {
        HttpSms::new(HttpSmsConfig {
            url: "https://sms.example/send?key=k3y-in-url&to={phone}".into(),
            method: "POST".into(),
            headers: vec![("X-Api-Key".into(), "api-key-in-header".into())],
            body: String::new(),
            encoding: TemplateEncoding::Form,
            content_type: String::new(),
            auth,
            success_status: vec![],
            success_body_contains: String::new(),
            timeout: std::time::Duration::from_secs(1),
        })
    }

    /// A request that cannot be built (here a header value the message made invalid) is
    /// radmfa's fault, not the provider's outage: never a reason to fail open. Nothing is
    /// sent (the error comes before any connection; the port is closed anyway).
    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_not_an_outage() {
        let mut g = gateway(HttpAuth::None);
        g.cfg.url = "http://127.0.0.1:1/send?to={phone}".into();
        g.cfg.headers = vec![("X-Text".into(), "{message}".into())];
        let e = g
            .send_sms(
                "+15550100",
                &Secret::from("line one\nline two 123456"),
                &Secret::from("123456"),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ProviderError::Setup(_)), "{e:?}");
        assert!(!e.is_outage());
        assert!(e.to_string().contains("could not be built"), "{e}");
        assert!(!e.to_string().contains("123456"), "{e}");
    }

    #[test]
    fn snippet_blanks_a_code_inside_a_credential_with_the_credential() {
        let hidden = vec!["1234".to_string(), "ab1234cd".to_string()];
        assert_eq!(
            snippet("auth ab1234cd code 1234", &hidden),
            "auth *** code ***"
        );
    }

    #[test]
    fn an_egress_proxys_password_is_hidden_with_its_basic_header() {
        let hidden = proxy_credentials(
            ["http://puser:ProxyPw-Secret99@127.0.0.1:3128".to_string()].into_iter(),
        );
        let echo = "HTTP 502: proxy error; you sent Basic cHVzZXI6UHJveHlQdy1TZWNyZXQ5OQ== (ProxyPw-Secret99)";
        assert_eq!(
            snippet(echo, &hidden),
            "HTTP 502: proxy error; you sent Basic *** (***)"
        );
        assert!(proxy_credentials(["http://proxy:3128".to_string()].into_iter()).is_empty());
    }

    #[test]
    fn snippet_has_no_control_characters() {
        assert_eq!(
            snippet("bad\r\nrequest\x1b[31m\tx", &[]),
            "bad  request [31m x"
        );
    }

    #[test]
    fn snippet_hides_code_message_and_credentials() {
        let v = [
            ("phone", "+1555"),
            ("code", "123456"),
            ("message", "Code 123456"),
        ];
        let plain = gateway(HttpAuth::None);
        assert_eq!(
            plain.shown("bad 123456 for +1555", &v, false),
            "bad *** for +1555"
        );
        // A code across the 160-character cut leaves none of its digits.
        let long = format!("{}123456 and more", "x".repeat(157));
        assert_eq!(
            plain.shown(&long, &v, false),
            format!("{}***", "x".repeat(157))
        );
        // A gateway that echoes the request shows none of the credentials.
        let basic = gateway(HttpAuth::Basic {
            username: "acct".into(),
            password: Secret::from("basic-pw"),
        });
        let echo = "GET ?key=k3y-in-url X-Api-Key: api-key-in-header \
                    Authorization: Basic YWNjdDpiYXNpYy1wdw== pw=basic-pw";
        let shown = basic.shown(echo, &v, false);
        for secret in [
            "k3y-in-url",
            "api-key-in-header",
            "YWNjdDpiYXNpYy1wdw==",
            "basic-pw",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Literal keys in the URL's path and in the body template are hidden too.
        let mut keyed = gateway(HttpAuth::None);
        keyed.cfg.url = "https://sms.example/api/PathKey0123456789/send?to={phone}".into();
        keyed.cfg.body = "user=acct&pass=form-literal-pw&to={phone}".into();
        let echo = "url /api/PathKey0123456789/send body user=acct&pass=form-literal-pw";
        let shown = keyed.shown(echo, &v, false);
        assert!(shown.contains("/api/***/send"), "{shown}");
        assert!(!shown.contains("form-literal-pw"), "{shown}");
        keyed.cfg.encoding = TemplateEncoding::Json;
        keyed.cfg.body = r#"{"auth":{"key":"json-literal-key"},"to":"{phone}"}"#.into();
        let shown = keyed.shown("echo json-literal-key", &v, false);
        assert_eq!(shown, "echo ***");
        // A template that is JSON only once filled in (`{code}` as a number), and a literal
        // number: its short password and its PIN were left in the reason.
        keyed.cfg.body =
            r#"{"user":"acme","password":"Gw7pw-x9k","pin":48151623,"to":"{phone}","code":{code}}"#
                .into();
        let echo = r#"HTTP 400: {"user":"acme","password":"Gw7pw-x9k","pin":48151623}"#;
        let shown = keyed.shown(echo, &v, false);
        for secret in ["Gw7pw-x9k", "48151623", "1623"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Not JSON even so: every literal value, as for an as-is body.
        keyed.cfg.body = r#"{"user":"acme","password":"Gw7pw-x9k","to":{phone}"#.into();
        let shown = keyed.shown(echo, &v, false);
        assert!(!shown.contains("Gw7pw-x9k"), "{shown}");
        keyed.cfg.encoding = TemplateEncoding::None;
        keyed.cfg.body = "<sms key=\"AsIsLiteralKey42\" to=\"{phone}\"/>".into();
        let shown = keyed.shown("echo AsIsLiteralKey42", &v, false);
        assert_eq!(shown, "echo ***");
        // Short ones too: an XML gateway's 8-character password, a 10-character key in the
        // path (only words of 12 or more were hidden).
        keyed.cfg.url = "https://sms.example/gw/K8x2pQ7zR1/send?to={phone}".into();
        keyed.cfg.body = "<sms><user>acme</user><password>Gw7pw-x9</password>\
                          <to>{phone}</to><text>{message}</text></sms>"
            .into();
        let echo = "Invalid request /gw/K8x2pQ7zR1/send <sms><user>acme</user>\
                    <password>Gw7pw-x9</password></sms>";
        let shown = keyed.shown(echo, &v, false);
        for secret in ["Gw7pw-x9", "K8x2pQ7zR1", "acme"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("/gw/***/send"), "{shown}");
        // A password in the URL's userinfo, and its Basic header.
        let mut userinfo = gateway(HttpAuth::None);
        userinfo.cfg.url = "https://acct:url-pass-77@sms.example/send?to={phone}".into();
        let shown = userinfo.shown(
            "auth url-pass-77 / Basic YWNjdDp1cmwtcGFzcy03Nw==",
            &v,
            false,
        );
        assert_eq!(shown, "auth *** / Basic ***", "{shown}");
        // '+' and '&' as reqwest sends them: percent-decoding keeps '+' (not a space).
        userinfo.cfg.url = "https://acct:Ab+Cd&9x@sms.example/send".into();
        let basic = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode("acct:Ab+Cd&9x")
        };
        let shown = userinfo.shown(&format!("Basic {basic}"), &v, false);
        assert_eq!(shown, "Basic ***", "{shown}");
        // A header's word alone, and a value as percent-encoding carried it.
        let mut worded = gateway(HttpAuth::None);
        worded.cfg.headers = vec![("Authorization".into(), "App word-key-4711".into())];
        worded.cfg.body = "key=slash/and+plus&to={phone}".into();
        let shown = worded.shown(
            "bad key word-key-4711; got key=slash/and+plus (slash/and plus)",
            &v,
            false,
        );
        assert_eq!(shown, "bad key ***; got key=*** (***)", "{shown}");
        // The message as the URL carried it, percent-encoded.
        let shown = plain.shown("text=Code+123456 failed", &v, false);
        assert_eq!(shown, "text=*** failed", "{shown}");
        // A short literal of the template is hidden as a word of its own, not inside other
        // words ("con***" for "context").
        let mut typed = gateway(HttpAuth::None);
        typed.cfg.encoding = TemplateEncoding::Json;
        typed.cfg.body =
            r#"{"type":"text","pin":"7-Up!x","to":"{phone}","text":"{message}"}"#.into();
        let shown = typed.shown(
            r#"HTTP 400: bad context for type "text" (pin 7-Up!x, a texting pin7-Up!x)"#,
            &v,
            false,
        );
        assert_eq!(
            shown,
            r#"HTTP 400: bad context for type "***" (pin ***, a texting pin***)"#
        );
        // Echoed percent-encoded or escaped for JSON, a short literal stands after an escape
        // that ends in a digit or letter: still a word of its own (review: `%22Pw12%22` and
        // `%22acme%22` were shown). One with a digit or sign is hidden anywhere.
        typed.cfg.body =
            r#"{"user":"acme","pass":"Pw12","pin":"P@ss1","to":"{phone}","text":"{message}"}"#
                .into();
        let echo = "invalid payload: %7B%22user%22%3A%22acme%22%2C%22pass%22%3A%22Pw12%22%2C\
                    %22pin%22%3A%22P%40ss1%22 | {\\u0022user\\u0022:\\u0022acme\\u0022} \\nacme";
        let shown = typed.shown(echo, &v, false);
        for secret in ["acme", "Pw12", "P%40ss1"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // As other encoders write them: PHP's `\/`, Python's `\u00e4` and `quote` (which
        // keeps `/` and writes a space as %20); each leaked a bearer token or a key.
        let mut escaped = gateway(HttpAuth::Bearer(Secret::from("tok/abc+def/123")));
        escaped.cfg.encoding = TemplateEncoding::Json;
        escaped.cfg.body =
            r#"{"pass":"pässwort","key":"ab/cd+ef/gh==","note":"my secret pw","to":"{phone}"}"#
                .into();
        let echo = r#"{"auth": "Bearer tok\/abc+def\/123", "pass": "p\u00e4sswort"} key=ab/cd%2Bef/gh%3D%3D note=my%20secret%20pw"#;
        let shown = escaped.shown(echo, &v, false);
        for secret in ["abc", "u00e4sswort", "cd%2Bef", "secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Escaped as HTML or XML does, as Go's and .NET's JSON encoders do (review: each
        // showed the token, the key or the password), or the whole body in base64.
        let mut marked = gateway(HttpAuth::Bearer(Secret::from("AbC4+dEf/GhI5&jKl=")));
        marked.cfg.headers = vec![("X-Api-Key".into(), "K3yVal&ue<Z>+Q9".into())];
        marked.cfg.encoding = TemplateEncoding::Json;
        marked.cfg.body = r#"{"to":"{phone}","password":"Pa&ss9w0rd<Q>+x"}"#.into();
        let body64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .encode(r#"{"to":"+1555","password":"Pa&ss9w0rd<Q>+x"}"#)
        };
        let echo = format!(
            "key K3yVal&amp;ue&lt;Z&gt;+Q9, password Pa&#38;ss9w0rd&#x3C;Q&#x3e;+x \
             <auth>Bearer AbC4+dEf/GhI5&amp;jKl=</auth> \"auth\":\"Bearer \
             AbC4\\u002BdEf\\/GhI5\\u0026jKl=\" body={body64}"
        );
        let shown = marked.shown(&echo, &v, false);
        for secret in ["K3yVal", "Pa&", "ss9w0rd", "AbC4", "GhI5", "eyJ0"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Entities and escapes that hide nothing are shown decoded, the rest as sent.
        assert_eq!(
            unescape_echo(r"a &lt;b&gt; &bogus; & \u00e9 \uD83D\uDE00 \n \u12"),
            "a <b> &bogus; & é 😀 \\n \\u12"
        );
        // Percent-encoded in lower-case hex, and a bidi override written as an entity.
        let shown = escaped.shown("tok=tok%2fabc%2bdef%2f123 &#x202E;evil", &v, false);
        assert_eq!(shown, "tok=***  evil");
        // Cut off in transport inside a literal of several words: its start is hidden too.
        let shown = escaped.shown("AUTH: BEARER TOK/ABC+DEF/123 PASS=PÄSSWORT", &v, false);
        assert_eq!(shown, "AUTH: BEARER *** PASS=***");
        let shown = escaped.shown("bad note: my secret", &v, true);
        assert_eq!(shown, "bad note: ***");
        let shown = escaped.shown("bad note: my", &v, true);
        assert_eq!(shown, "bad note: my", "under 4 characters of it: left");
        let bearer = gateway(HttpAuth::Bearer(Secret::from("tok-123")));
        assert_eq!(bearer.shown("Bearer tok-123", &v, false), "Bearer ***");
    }
}
