//! A warning about the configuration file itself rather than its settings: secrets written
//! into it (not in `*_file` keys) while every account on the host may read it. A secret
//! file open to everyone is refused (`config::validate::not_for_everyone`); the file that
//! names it is only warned about, because the samples ship world-readable and an install
//! that keeps every secret in files is fine at 0644. (A config, CA or CRL file every
//! account may *change* is refused: `config::validate::not_writable_by_everyone`.)

use std::path::Path;

/// The warnings for `path` (whose text is `text`).
pub fn warnings(path: &Path, text: &str) -> Vec<String> {
    inline_warning(path, text).into_iter().collect()
}

fn inline_warning(path: &Path, text: &str) -> Option<String> {
    let mode = others_may_read(path)?;
    let inline = inline_secrets(text);
    if inline.is_empty() {
        return None;
    }
    Some(format!(
        "{} is readable by every account on this host (mode {mode:o}) and holds secrets \
         itself ({}): `chmod 0640` it (owner root, group radmfa), or move them to the \
         *_file keys",
        path.display(),
        inline.join(", ")
    ))
}

/// The file's mode when every account may read it.
fn others_may_read(path: &Path) -> Option<u32> {
    mode_with(path, 0o004)
}

#[cfg(unix)]
fn mode_with(path: &Path, bits: u32) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & bits != 0).then_some(mode)
}

#[cfg(not(unix))]
fn mode_with(_path: &Path, _bits: u32) -> Option<u32> {
    None
}

/// The keys that hold a secret in the text itself, named as the loader's errors name them.
fn inline_secrets(text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let set = |t: Option<&toml::Value>, key: &str| {
        t.and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.is_empty())
    };
    let mut out = Vec::new();
    for (section, key) in [
        ("ldap", "bind_password"),
        ("upstream", "secret"),
        ("twilio", "auth_token"),
        ("http_sms", "password"),
        ("http_sms", "token"),
    ] {
        if set(doc.get(section), key) {
            out.push(format!("{section}.{key}"));
        }
    }
    if let Some(groups) = doc.get("upstreams").and_then(|u| u.as_table()) {
        for (name, group) in groups {
            if set(Some(group), "secret") {
                out.push(format!("upstreams.{name}.secret"));
            }
        }
    }
    if let Some(clients) = doc.get("client").and_then(|c| c.as_array()) {
        for (i, client) in clients.iter().enumerate() {
            if set(Some(client), "secret") {
                out.push(format!("client[{i}].secret"));
            }
        }
    }
    let url = doc
        .get("store")
        .and_then(|s| s.get("url"))
        .and_then(|u| u.as_str());
    if url.is_some_and(url_has_password) {
        out.push("store.url".into());
    }
    if let Some(sms) = doc.get("http_sms") {
        out.extend(http_sms_keys(sms));
    }
    out
}

/// A gateway's key outside `password`/`token`: in the url (as a password or a query
/// parameter), a header or the body. These templates have no `*_file` form, so a gateway
/// that wants its key there leaves the file's mode as the only protection. A name that
/// sounds like a key and has a value of its own (not a `{placeholder}`) counts.
fn http_sms_keys(sms: &toml::Value) -> Vec<String> {
    let mut out = Vec::new();
    let text = |key: &str| sms.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let url = text("url");
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let in_query = query.split('&').any(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        sounds_like_key(name) && literal(value)
    });
    if url_has_password(url) || in_query || path_key(url) {
        out.push("http_sms.url".into());
    }
    if let Some(headers) = sms.get("headers").and_then(|h| h.as_table()) {
        for (name, value) in headers {
            if sounds_like_key(name) && value.as_str().is_some_and(literal) {
                out.push(format!("http_sms.headers.{name}"));
            }
        }
    }
    if sounds_like_key(text("body")) {
        out.push("http_sms.body".into());
    }
    out
}

/// A path segment that looks like a key (`/gw/K8x2pQ7zR1/send`): letters and digits mixed,
/// six or more, or any literal word of 24 or more. Stricter than what the gateway's error
/// echo hides (`delivery::http`, where hiding a word costs nothing): here a version or a
/// date (`v2`, `2010-04-01`) or a plain word (`messages`) would make a false warning.
fn path_key(url: &str) -> bool {
    let no_query = url.split(['?', '#']).next().unwrap_or("");
    let rest = no_query.split_once("://").map_or(no_query, |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    path.split('/').filter(|seg| !seg.contains('{')).any(|seg| {
        let n = seg.chars().count();
        let mixed =
            seg.chars().any(|c| c.is_ascii_digit()) && seg.chars().any(|c| c.is_ascii_alphabetic());
        (n >= 6 && mixed) || n >= 24
    })
}

/// Whether `name` (or a body holding it) looks like it carries a credential.
fn sounds_like_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "auth",
        "signature",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// A value written out rather than filled in from a placeholder.
fn literal(value: &str) -> bool {
    let v = value.trim();
    let placeholder = v.starts_with('{') && v.ends_with('}');
    !v.is_empty() && !placeholder
}

/// `postgres://user:password@host/db`, or a `password=` parameter.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    userinfo.is_some_and(|u| u.contains(':')) || url.to_ascii_lowercase().contains("password=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_inline_secret_and_no_file_key() {
        let text = r#"
[store]
url = "postgres://radmfa:pw@db.example.org/radmfa"
[ldap]
bind_password = "x"
[upstream]
secret_file = "/etc/radmfa/upstream.secret"
[upstreams.branch]
secret = "y"
[twilio]
auth_token_file = "/etc/radmfa/twilio"
[[client]]
secret_file = "/etc/radmfa/a"
[[client]]
secret = "z"
"#;
        assert_eq!(
            inline_secrets(text),
            [
                "ldap.bind_password",
                "upstreams.branch.secret",
                "client[1].secret",
                "store.url"
            ]
        );
        assert!(inline_secrets("[[client]]\nsecret_file = \"/x\"\n").is_empty());
    }

    #[test]
    fn finds_a_gateway_key_in_http_sms_templates() {
        let text = r#"
[http_sms]
url = "https://sms.example.org/send?api_key=abc123&to={phone}"
headers = { "X-Api-Key" = "k-123", "X-Tenant" = "radmfa", "X-Auth" = "{phone}" }
body = "apikey=abc&to={phone}&text={message}"
"#;
        assert_eq!(
            inline_secrets(text),
            [
                "http_sms.url",
                "http_sms.headers.X-Api-Key",
                "http_sms.body"
            ]
        );
        // The sample's shape: placeholders and a tenant name, the token in token_file.
        let plain = r#"
[http_sms]
url = "https://sms.example.org/api/send?to={phone}"
headers = { "X-Tenant" = "radmfa" }
body = '{"to":"{phone}","text":"{message}"}'
token_file = "/etc/radmfa/sms-token"
"#;
        assert!(
            inline_secrets(plain).is_empty(),
            "{:?}",
            inline_secrets(plain)
        );
        assert_eq!(
            inline_secrets("[http_sms]\nurl = \"https://u:p@sms.example.org/\"\n"),
            ["http_sms.url"]
        );
        // A short key in the path; not a version, a date or a plain word.
        assert_eq!(
            inline_secrets("[http_sms]\nurl = \"https://sms.example.org/gw/K8x2pQ7z/send\"\n"),
            ["http_sms.url"]
        );
        let plain = "[http_sms]\nurl = \"https://sms.example.org/v2/2010-04-01/messages/{phone}?to={phone}\"\n";
        assert!(
            inline_secrets(plain).is_empty(),
            "{:?}",
            inline_secrets(plain)
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_ca_file_everyone_may_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not read here\n").unwrap();
        let text = format!(
            "[ldap]\nurls = [\"ldaps://dc.example.org\"]\nbase_dn = \"dc=example,dc=org\"\n\
             bind_dn = \"\"\nca_file = \"{}\"\n[[client]]\nname = \"nas\"\n\
             address = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n",
            ca.display()
        );
        let parse = || crate::config::Config::parse(&text, &dir.path().join("radmfa.toml"));
        let set = |mode| std::fs::set_permissions(&ca, std::fs::Permissions::from_mode(mode));
        set(0o644).unwrap();
        assert!(parse().is_ok());
        set(0o666).unwrap();
        let e = parse().unwrap_err().to_string();
        assert!(
            e.starts_with("ldap.ca_file: ") && e.contains("mode 666"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_config_file_everyone_may_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("radmfa.toml");
        std::fs::write(
            &f,
            "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=example,dc=org\"\n\
             bind_dn = \"\"\n[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
             secret_file = \"s\"\n",
        )
        .unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let set = |mode| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode));
        set(0o644).unwrap();
        assert!(crate::config::Config::load(&f).is_ok());
        set(0o646).unwrap();
        let e = crate::config::Config::load(&f).unwrap_err().to_string();
        assert!(e.contains("can be changed by every account"), "{e}");
    }

    #[test]
    fn a_url_password_is_told_from_a_user_alone() {
        assert!(url_has_password("postgres://u:p@h/db"));
        assert!(url_has_password("postgresql://h/db?user=u&password=p"));
        assert!(!url_has_password("postgres://u@h/db"));
        assert!(!url_has_password("postgres://h:5432/db"));
        assert!(!url_has_password("postgres:///db?host=/run/postgresql"));
    }

    #[cfg(unix)]
    #[test]
    fn warns_only_when_others_may_read_a_file_with_inline_secrets() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("radmfa.toml");
        let text = "[[client]]\nsecret = \"z\"\n";
        std::fs::write(&f, text).unwrap();
        let set = |mode| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode));
        set(0o644).unwrap();
        let w = warnings(&f, text);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("mode 644") && w[0].contains("client[0].secret"),
            "{w:?}"
        );
        assert!(!w[0].contains("\"z\""), "the secret itself: {w:?}");
        set(0o640).unwrap();
        assert!(warnings(&f, text).is_empty());
        set(0o644).unwrap();
        assert!(warnings(&f, "[[client]]\nsecret_file = \"/x\"\n").is_empty());
    }
}
