//! A secret file whose secret begins or ends in whitespace (a space or tab typed, or left by
//! `echo "secret "`): radmfa keeps it, as a secret may hold one on purpose and trimming it
//! would break setups that work, but the other side must have it too. A NAS whose secret
//! lacks it sees every request dropped as signed with another secret, and the drop log said
//! only that the secrets differ, with nothing to show why. Said by `config check` and the
//! start-up log, naming the entry and the file.

use std::path::{Path, PathBuf};

/// The `*_file` keys that hold a secret shared with someone else, by section: the key, and
/// whose copy must match.
const SECRET_FILES: &[(&str, &str, &str)] = &[
    (
        "ldap",
        "bind_password_file",
        "the service account's password in the directory",
    ),
    ("upstream", "secret_file", "the upstream server's secret"),
    ("twilio", "auth_token_file", "Twilio's auth token"),
    ("http_sms", "password_file", "the gateway's password"),
    ("http_sms", "token_file", "the gateway's token"),
];

/// The warnings for the config at `path` (whose text is `text`).
pub fn warnings(path: &Path, text: &str) -> Vec<String> {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    let mut check = |what: String, table: Option<&toml::Value>, key: &str, whose: &str| {
        let Some(file) = table.and_then(|t| t.get(key)).and_then(|v| v.as_str()) else {
            return;
        };
        let file = resolve(base, file);
        let Ok(content) = std::fs::read_to_string(&file) else {
            // Unreadable: the load said so already.
            return;
        };
        let secret = crate::config::validate::secret_file_value(&content);
        if let Some(edge) = blank_edge(secret) {
            out.push(format!(
                "{what}: {key} {} {edge}: {whose} must {} it too (radmfa keeps it; if \
                 theirs has none, take it out of the file)",
                file.display(),
                if edge.starts_with("begins") {
                    "begin with"
                } else {
                    "end in"
                }
            ));
        }
    };
    for (section, key, whose) in SECRET_FILES {
        check(section.to_string(), doc.get(*section), key, whose);
    }
    if let Some(groups) = doc.get("upstreams").and_then(|u| u.as_table()) {
        for (name, group) in groups {
            check(
                format!("upstreams.{name}"),
                Some(group),
                "secret_file",
                "the upstream servers' secret",
            );
        }
    }
    if let Some(clients) = doc.get("client").and_then(|c| c.as_array()) {
        for (i, client) in clients.iter().enumerate() {
            let name = client.get("name").and_then(|n| n.as_str());
            let what = match name {
                Some(name) => format!("client {name:?}"),
                None => format!("client[{i}]"),
            };
            check(what, Some(client), "secret_file", "the NAS's shared secret");
        }
    }
    out
}

/// As the loader resolves a file key: relative to the config file's directory.
fn resolve(base: &Path, file: &str) -> PathBuf {
    let file = Path::new(file);
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        base.join(file)
    }
}

/// How `secret` begins or ends in whitespace, if it does: "ends in a space".
fn blank_edge(secret: &str) -> Option<String> {
    let name = |c: char| match c {
        ' ' => "a space".to_string(),
        '\t' => "a tab".to_string(),
        c => format!("whitespace ({})", c.escape_unicode()),
    };
    if let Some(c) = secret.chars().next_back().filter(|c| c.is_whitespace()) {
        return Some(format!("ends in {}", name(c)));
    }
    let c = secret.chars().next().filter(|c| c.is_whitespace())?;
    Some(format!("begins with {}", name(c)))
}

#[cfg(test)]
mod tests {
    use super::blank_edge;

    #[test]
    fn blanks_at_either_end_are_named() {
        assert_eq!(blank_edge("s3cret "), Some("ends in a space".into()));
        assert_eq!(blank_edge("s3cret\t"), Some("ends in a tab".into()));
        assert_eq!(blank_edge(" s3cret"), Some("begins with a space".into()));
        assert_eq!(
            blank_edge("s3cret\u{a0}"),
            Some("ends in whitespace (\\u{a0})".into())
        );
        assert_eq!(blank_edge("s3 cret"), None);
        assert_eq!(blank_edge(""), None);
    }
}
