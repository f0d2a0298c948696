//! Every sample config parses; every file in conf/invalid fails naming the key its first line
//! (`# expect: KEY`) announces.

use std::path::{Path, PathBuf};

use radmfa::config::Config;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_sample_config_is_valid() {
    let samples = files("conf");
    assert!(
        samples.len() >= 2,
        "expected sample configs in conf/, found {samples:?}"
    );
    for f in samples {
        let cfg = Config::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!cfg.clients.is_empty(), "{}", f.display());
    }
}

#[test]
fn every_invalid_config_names_its_key() {
    let bad = files("conf/invalid");
    assert!(
        bad.len() >= 15,
        "expected invalid configs, found {}",
        bad.len()
    );
    for f in bad {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} lacks a '# expect: KEY' first line", f.display()))
            .trim()
            .to_string();
        match Config::load(&f) {
            Ok(_) => panic!("{} was accepted", f.display()),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&expect),
                    "{}: error {msg:?} does not name {expect:?}",
                    f.display()
                );
                // Values a file marks as secret never appear in the error.
                assert!(
                    !msg.contains("not-shown"),
                    "{}: error {msg:?} shows a secret value",
                    f.display()
                );
            }
        }
    }
}

/// A command names the file one way whatever is wrong with it, `config FILE: ...`: a
/// parse error said `config: FILE: ...` beside a value's `config FILE: key: ...`.
#[test]
fn a_config_error_names_the_file_one_way() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str, mode: u32| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    let cases = [
        file(
            "parse.toml",
            &MINIMAL.replace("base_dn", "pool_size = \"8\"\nbase_dn"),
            0o640,
        ),
        file(
            "value.toml",
            &format!("[totp]\ndigits = 4\n{MINIMAL}"),
            0o640,
        ),
        file("open.toml", MINIMAL, 0o666),
        dir.path().join("missing.toml"),
    ];
    for path in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_radmfa"))
            .arg("--config")
            .arg(&path)
            .args(["config", "check"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let named = format!("radmfa: config {}: ", path.display());
        assert!(
            !out.status.success() && err.starts_with(&named) && !err.contains(": config:"),
            "{err}"
        );
    }
}

/// The least a config needs: a directory and one client (127.0.0.1).
const MINIMAL: &str = r#"
[ldap]
urls = ["ldap://127.0.0.1"]
bind_dn = "cn=admin"
bind_password = "pw"
base_dn = "dc=example,dc=org"
[[client]]
name = "nas"
address = "127.0.0.1"
secret = "0123456789abcdef"
"#;

/// Without `server.name`, audit records carry the kernel's host name (what `hostname`
/// prints), which tells cluster nodes apart.
#[test]
fn server_name_defaults_to_the_host_name() {
    let cfg = Config::parse(MINIMAL, Path::new("inline.toml")).unwrap();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(cfg.server.name, kernel.trim());
}

#[test]
fn defaults_are_secure() {
    let cfg = Config::parse(MINIMAL, Path::new("inline.toml")).unwrap();
    let c = &cfg.clients[0];
    assert!(c.require_message_authenticator);
    assert_eq!(c.otp_mode, radmfa::config::OtpMode::Challenge);
    assert_eq!(c.no_factor, radmfa::config::NoFactorPolicy::Reject);
    assert_eq!(cfg.lockout.threshold, 5);
    assert_eq!(cfg.totp.window, 1);
    assert_eq!(cfg.challenge.max_attempts, 1);
    assert_eq!(cfg.server.listen.len(), 2);
    assert_eq!(cfg.server.listen[0].port(), 1812);
    // The shared secret is masked wherever the config is printed.
    let dump = format!("{cfg:?}");
    assert!(!dump.contains("0123456789abcdef"), "{dump}");
    assert!(!dump.contains("\"pw\""), "{dump}");
}

/// With PostgreSQL, the database ends a request transaction left idle longer than any
/// request may run (a stalled node's); that bound follows the longest client deadline, here
/// a client that holds voice calls for 30 s.
#[test]
fn postgres_idle_transaction_bound_follows_the_longest_request() {
    let config = |extra: &str| {
        let text = format!(
            r#"
[server]
request_deadline_ms = 3000
[store]
type = "postgres"
url = "postgres://radmfa@127.0.0.1/radmfa"
{MINIMAL}
[[client]]
name = "rdg"
address = "127.0.0.2"
secret = "0123456789abcdef"
{extra}
"#
        );
        match Config::parse(&text, Path::new("inline.toml"))
            .unwrap()
            .store
        {
            radmfa::config::StoreConfig::Postgres { settings, .. } => settings.max_request,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(config(""), std::time::Duration::from_secs(3));
    assert_eq!(
        config("methods = [\"voice\"]\nvoice_mode = \"hold\"\nvoice_budget_secs = 30"),
        std::time::Duration::from_secs(30)
    );
}

/// A file that does not parse is reported without the line it failed on: that line can
/// hold a shared secret or a password, and a failed reload writes the error to the log.
#[test]
fn a_parse_error_does_not_quote_a_secret() {
    let base = "[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n";
    for (line, must_name) in [
        // An escape TOML does not know, inside the secret.
        ("secret = \"Xy9\\q-very-secret-nas-key\"", "line 4, column"),
        // The wrong type: serde quotes the value it got.
        ("secret = 98765432109876", "client[0].secret"),
    ] {
        let err = Config::parse(&format!("{base}{line}\n"), Path::new("radmfa.toml"))
            .expect_err(line)
            .to_string();
        assert!(err.contains(must_name), "{err}");
        for part in ["very-secret", "98765432109876"] {
            assert!(!err.contains(part), "{part} in {err}");
        }
    }
    // Values of other keys are still quoted where that helps.
    let err = Config::parse(
        &format!("{base}secret = \"0123456789abcdef\"\notp_mode = 7\n"),
        Path::new("radmfa.toml"),
    )
    .expect_err("otp_mode")
    .to_string();
    assert!(
        err.contains("client[0].otp_mode") && err.contains("`7`"),
        "{err}"
    );
}

/// `otp_mode = "code_only"` refuses what needs a password or a prompt, naming the key; SMS
/// and calls, in the default methods, are left out rather than refused, and refused when
/// the admin's own methods list names them.
#[test]
fn a_code_only_client_refuses_what_needs_a_password_or_a_prompt() {
    let base = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=example,dc=org\"\n\
                bind_dn = \"\"\n[[client]]\nname = \"ns\"\naddress = \"192.0.2.1\"\n\
                secret = \"0123456789abcdef\"\notp_mode = \"code_only\"\n";
    let cfg = Config::parse(base, Path::new("radmfa.toml")).unwrap();
    assert_eq!(
        cfg.clients[0].factors.methods,
        vec![radmfa::mfa::method::Method::Totp]
    );
    let totp = Config::parse(
        &format!("{base}methods = [\"totp\"]\n"),
        Path::new("radmfa.toml"),
    )
    .unwrap();
    assert_eq!(
        totp.clients[0].factors.methods,
        cfg.clients[0].factors.methods
    );
    for (line, key) in [
        // Named first, before the factors' own check asks it for held calls.
        ("second_factor_only = true", "client[0].second_factor_only"),
        ("primary = \"upstream\"", "client[0].primary"),
        ("app_passwords = true", "client[0].app_passwords"),
        (
            "remember_second_factor_secs = 600",
            "client[0].remember_second_factor_secs",
        ),
        ("methods = [\"sms\", \"voice\"]", "client[0].methods"),
        // Asked for by name, an SMS is refused rather than dropped quietly.
        ("methods = [\"totp\", \"sms\"]", "client[0].methods"),
        // Written out whole too, though it is the default list.
        (
            "methods = [\"totp\", \"sms\", \"voice\"]",
            "client[0].methods",
        ),
    ] {
        let err = Config::parse(&format!("{base}{line}\n"), Path::new("radmfa.toml"))
            .expect_err(line)
            .to_string();
        assert!(
            err.contains(key) && err.contains("code_only"),
            "{line}: {err}"
        );
    }
}

/// A problem with a client's key names the client too: `client[2]` is counted from zero
/// through a file that may hold twenty entries.
#[test]
fn a_client_problem_names_the_client() {
    let entry = |name: &str, address: &str, secret: &str| {
        format!("[[client]]\nname = \"{name}\"\naddress = \"{address}\"\nsecret = \"{secret}\"\n")
    };
    let good = "0123456789abcdef";
    let parse = |text: String| {
        Config::parse(&text, Path::new("radmfa.toml"))
            .expect_err(&text)
            .to_string()
    };
    let err = parse(format!(
        "{}{}",
        entry("asa-1", "192.0.2.1", good),
        entry("rdg-2", "192.0.2.2", "short")
    ));
    assert!(
        err.contains("client[1].secret") && err.contains("named \"rdg-2\""),
        "{err}"
    );
    assert!(!err.contains("asa-1"), "{err}");
    // The later of two entries listing one address is the one named.
    let err = parse(format!(
        "{}{}",
        entry("asa-1", "192.0.2.1", good),
        entry("rdg-2", "192.0.2.1", good)
    ));
    assert!(
        err.contains("client[1].address")
            && err.contains("named \"rdg-2\"")
            && err.contains("\"asa-1\" (client[0])"),
        "{err}"
    );
    // Where the name is the problem, it is not repeated as a name.
    let err = parse(format!(
        "{}{}",
        entry("asa-1", "192.0.2.1", good),
        entry("ASA-1", "192.0.2.2", good)
    ));
    assert!(
        err.contains("client[1].name") && !err.contains("named"),
        "{err}"
    );
    // Checks made once every entry is read name it too.
    let err = parse(format!(
        "{}primary = \"upstream\"\n",
        entry("asa-1", "192.0.2.1", good)
    ));
    assert!(
        err.contains("client[0].primary") && err.contains("named \"asa-1\""),
        "{err}"
    );
}

/// A `*_file` secret is the file's first line: a note on a later line is not part of it.
/// A file every account on the host may read is refused, naming the key: the shared secret
/// in it lets anyone there forge requests and unhide passwords.
#[test]
fn a_secret_file_gives_its_first_line_and_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nas.secret");
    std::fs::write(&file, "first-line-secret\r\n# rotated 2026-11\n").unwrap();
    let text = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=example,dc=org\"\nbind_dn = \"\"\nbind_password = \"\"\n\
                [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret_file = \"nas.secret\"\n";
    let mode = |m| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(m)).unwrap();
    mode(0o644);
    let err = Config::parse(text, &dir.path().join("radmfa.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("client[0].secret_file") && err.contains("mode 644") && err.contains("chmod"),
        "{err}"
    );
    mode(0o640);
    let cfg = Config::parse(text, &dir.path().join("radmfa.toml")).unwrap();
    assert_eq!(cfg.clients[0].secret.expose(), b"first-line-secret");
    // What editors add and nobody typed goes: a byte-order mark, a lone carriage return.
    for written in [
        "\u{feff}first-line-secret\r\n",
        "first-line-secret\r",
        "\u{feff}first-line-secret",
    ] {
        std::fs::write(&file, written).unwrap();
        let cfg = Config::parse(text, &dir.path().join("radmfa.toml")).unwrap();
        assert_eq!(
            cfg.clients[0].secret.expose(),
            b"first-line-secret",
            "{written:?}"
        );
    }
    // An empty file, or the secret on a later line: said of the file, under its key (it
    // was "client[0].secret: is too short", a key the config does not have).
    for (written, said) in [
        ("", "nas.secret is empty"),
        ("\n", "nas.secret is empty"),
        (
            "\nfirst-line-secret\n",
            "nas.secret: its first line is empty; the secret must be on the first line",
        ),
        ("short\n", "nas.secret: the secret is too short (5 bytes)"),
        ("         \n", "nas.secret: the secret is blank"),
    ] {
        std::fs::write(&file, written).unwrap();
        let err = Config::parse(text, &dir.path().join("radmfa.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("client[0].secret_file: ") && err.contains(said),
            "{written:?}: {err}"
        );
    }
}

/// The PostgreSQL store's trust files are held to the rules of every other CA and key file:
/// a CA any account can change (sqlx reads it again for each connection) lets any of them
/// pose as the database, and a client key any account can read is no secret. Both passed
/// before, as `store.ssl_root_cert` or as `sslrootcert`/`sslkey` in the URL.
#[test]
fn postgres_trust_files_open_to_every_account_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("pg-ca.pem");
    let key = dir.path().join("pg-client.key");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let mode =
        |f: &Path, m| std::fs::set_permissions(f, std::fs::Permissions::from_mode(m)).unwrap();
    let config = |store: &str| {
        let text = format!("[store]\ntype = \"postgres\"\n{store}\n{MINIMAL}");
        Config::parse(&text, &dir.path().join("radmfa.toml")).map_err(|e| e.to_string())
    };
    let url = "url = \"postgres://radmfa@db.example.org/radmfa?sslmode=verify-full";
    let with_root = format!("{url}\"\nssl_root_cert = \"pg-ca.pem\"");
    let with_url_ca = format!("{url}&sslrootcert={}\"", ca.display());
    let with_url_key = format!("{url}&sslkey={}\"", key.display());
    mode(&ca, 0o644);
    mode(&key, 0o600);
    for ok in [&with_root, &with_url_ca, &with_url_key] {
        config(ok).unwrap();
    }
    mode(&ca, 0o666);
    let err = config(&with_root).unwrap_err();
    assert!(
        err.contains("store.ssl_root_cert") && err.contains("mode 666"),
        "{err}"
    );
    let err = config(&with_url_ca).unwrap_err();
    assert!(
        err.contains("store.url (sslrootcert)") && err.contains("mode 666"),
        "{err}"
    );
    mode(&key, 0o644);
    let err = config(&with_url_key).unwrap_err();
    assert!(
        err.contains("store.url (sslkey)") && err.contains("mode 644"),
        "{err}"
    );
}

/// `bind_dn = ""` asks for anonymous searches and needs no password line; a bind_dn of
/// blanks is the same (not a name to bind with and no password: an unauthenticated bind).
#[test]
fn anonymous_search_needs_no_bind_password() {
    let dir = tempfile::tempdir().unwrap();
    for dn in ["", "  "] {
        let text = format!(
            "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=example,dc=org\"\n\
             bind_dn = \"{dn}\"\n[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
             secret = \"0123456789abcdef\"\n"
        );
        let cfg = Config::parse(&text, &dir.path().join("radmfa.toml"))
            .unwrap_or_else(|e| panic!("bind_dn {dn:?}: {e}"));
        let ldap = cfg.ldap.expect("[ldap]");
        assert_eq!(ldap.bind_dn, "", "{dn:?}");
        assert!(ldap.bind_password.is_empty());
    }
    // A named account still needs its password.
    let text = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=example,dc=org\"\n\
                bind_dn = \"cn=svc\"\n[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\n\
                secret = \"0123456789abcdef\"\n";
    let err = Config::parse(text, &dir.path().join("radmfa.toml")).unwrap_err();
    assert!(err.to_string().contains("ldap.bind_password"), "{err}");
}

/// `{:?}` of a loaded config (what a debugging session or a panic message might print) shows
/// no secret: shared secrets, the bind password, provider credentials, the SMS gateway's URL,
/// header values and body, the database URL.
#[test]
fn debug_of_a_config_shows_no_secret() {
    let text = r#"
[ldap]
urls = ["ldap://127.0.0.1"]
bind_dn = "cn=admin"
bind_password = "hidden-bind-password"
base_dn = "dc=example,dc=org"
[[client]]
name = "nas"
address = "127.0.0.1"
secret = "hidden-nas-secret"
methods = ["totp", "sms"]
[sms]
provider = "http"
[http_sms]
url = "https://sms.example.org/hidden-path-key/send?to={phone}"
headers = { "X-Api-Key" = "hidden-header-key" }
body = '{"key": "hidden-body-key", "text": "{message}"}'
encoding = "json"
[upstream]
servers = ["127.0.0.1:18120"]
secret = "hidden-upstream-secret"
"#;
    let cfg = Config::parse(text, Path::new("radmfa.toml")).expect("valid");
    let shown = format!("{cfg:?}");
    assert!(shown.contains("X-Api-Key"), "header names stay: {shown}");
    assert!(!shown.contains("hidden"), "a secret in {shown}");
    // Nor as bytes (a secret held as Vec<u8> prints as a list of numbers).
    assert!(
        !shown.contains("104, 105, 100, 100, 101, 110"),
        "a secret in {shown}"
    );

    let pg = r#"
[store]
type = "postgres"
url = "postgres://radmfa:hidden-db-password@127.0.0.1/radmfa"
key_file = "/etc/radmfa/key"
"#;
    let cfg = Config::parse(&format!("{MINIMAL}{pg}"), Path::new("radmfa.toml")).expect("valid");
    let shown = format!("{cfg:?}");
    assert!(shown.contains("Postgres"), "{shown}");
    assert!(!shown.contains("hidden"), "a secret in {shown}");
    // Nor as bytes (a secret held as Vec<u8> prints as a list of numbers).
    assert!(
        !shown.contains("104, 105, 100, 100, 101, 110"),
        "a secret in {shown}"
    );
}

/// The README and the NAS notes once gave FortiGate's `remoteauthtimeout` as 60 and 10: with
/// two nodes, 60 made every login wait a minute while one was down. One value everywhere.
#[test]
fn the_docs_give_one_fortigate_timeout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    docs.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    let mut values = std::collections::BTreeSet::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (i, _) in text.match_indices("remoteauthtimeout ") {
            let value: String = text[i + "remoteauthtimeout ".len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !value.is_empty() {
                values.insert((
                    value,
                    doc.file_name().unwrap().to_string_lossy().to_string(),
                ));
            }
        }
    }
    let distinct: std::collections::BTreeSet<&String> = values.iter().map(|(v, _)| v).collect();
    assert!(!values.is_empty(), "no remoteauthtimeout found in the docs");
    assert_eq!(
        distinct.len(),
        1,
        "different FortiGate timeouts: {values:?}"
    );
}

/// A gateway's 4xx or 5xx listed as success would count an SMS it refused as sent (the user
/// waits for a code that is not coming); a 3xx (some form gateways redirect, and radmfa
/// follows no redirect) may be one.
#[test]
fn sms_gateway_success_statuses_must_be_successes() {
    let with = |statuses: &str| {
        format!(
            r#"{MINIMAL}
[sms]
provider = "http"
[http_sms]
url = "https://sms.example.org/send?to={{phone}}&text={{message}}"
success_status = [{statuses}]
"#
        )
    };
    Config::parse(&with("200, 202, 302"), Path::new("radmfa.toml")).expect("valid");
    for (statuses, at, status) in [("200, 404", 1, 404), ("500", 0, 500), ("100", 0, 100)] {
        let err = Config::parse(&with(statuses), Path::new("radmfa.toml"))
            .expect_err(statuses)
            .to_string();
        assert!(
            err.contains(&format!("http_sms.success_status[{at}]"))
                && err.contains(&format!("{status} is not a success")),
            "{err}"
        );
    }
}

/// A `{name}` in the SMS gateway's url, body or a header that is no placeholder (a typo:
/// `{mesage}`) is refused, naming the key: it would be sent as it is, and the user texted
/// "{mesage}". A JSON body's own braces are not placeholders.
#[test]
fn an_unknown_placeholder_in_the_sms_gateway_template_is_refused() {
    let base = |url: &str, body: &str, header: &str| {
        format!(
            r#"{MINIMAL}
[sms]
provider = "http"
[http_sms]
url = "{url}"
headers = {{ "X-Note" = "{header}" }}
body = '{body}'
encoding = "json"
"#
        )
    };
    let good = base(
        "https://sms.example.org/send?to={phone}",
        r#"{"text": "{message}", "meta": {"code": "{code}"}}"#,
        "for {phone}",
    );
    Config::parse(&good, Path::new("radmfa.toml")).expect("valid");
    for (text, key, name) in [
        (
            base(
                "https://sms.example.org/send?to={phone}&m={mesage}",
                "{\"t\": \"{code}\"}",
                "x",
            ),
            "http_sms.url",
            "{mesage}",
        ),
        (
            base(
                "https://sms.example.org/send",
                "{\"to\": \"{Phone}\", \"t\": \"{code}\"}",
                "x",
            ),
            "http_sms.body",
            "{Phone}",
        ),
        (
            base(
                "https://sms.example.org/send?to={phone}",
                "{\"t\": \"{code}\"}",
                "{user}",
            ),
            "http_sms.headers.X-Note",
            "{user}",
        ),
    ] {
        let err = Config::parse(&text, Path::new("radmfa.toml"))
            .expect_err(name)
            .to_string();
        assert!(
            err.contains(key) && err.contains(&format!("{name} is not a placeholder")),
            "{err}"
        );
    }
}

/// accept_attributes that no Access-Accept can hold would refuse every login, found only
/// at runtime: refused by the check, naming the key. What fits is let through.
#[test]
fn accept_attributes_that_no_accept_can_hold_are_refused() {
    // Each Class of 250 octets takes 252 in a packet; an Accept has 4058 for them.
    let with = |n: usize| {
        let class = format!("\"Class = {}\"", "c".repeat(250));
        format!(
            "{MINIMAL}accept_attributes = [{}]\n",
            vec![class; n].join(", ")
        )
    };
    assert!(Config::parse(&with(16), Path::new("radmfa.toml")).is_ok());
    let err = Config::parse(&with(18), Path::new("radmfa.toml"))
        .expect_err("18 × 252 octets")
        .to_string();
    assert!(
        err.contains("client[0].accept_attributes")
            && err.contains("these 18 attributes take 4536 octets in a packet, more than the 4058")
            && err.contains("every login would be refused"),
        "{err}"
    );
}

/// A config file or a secret file in a directory every account may change is refused,
/// naming the directory, though the file's own mode is right: anyone could rename a file
/// of their own over it. A sticky directory (as /tmp is) lets no one replace what is not
/// theirs, and passes.
#[test]
fn a_file_in_a_directory_every_account_may_change_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("radmfa");
    std::fs::create_dir(&dir).unwrap();
    let config = dir.join("radmfa.toml");
    let text = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=example,dc=org\"\nbind_dn = \"\"\nbind_password = \"\"\n\
                [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret_file = \"secrets/nas.secret\"\n";
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let secrets = dir.join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let secret = secrets.join("nas.secret");
    std::fs::write(&secret, "0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mode = |d: &std::path::Path, m| {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(m)).unwrap()
    };
    Config::load(&config).expect("private directories");

    mode(&secrets, 0o777);
    let err = Config::load(&config).unwrap_err().to_string();
    assert!(
        err.contains("client[0].secret_file")
            && err.contains(&format!(
                "the directory {} can be changed",
                secrets.display()
            ))
            && err.contains("mode 777")
            && err.contains(&format!("chmod o-w {}", secrets.display())),
        "{err}"
    );
    mode(&secrets, 0o1777);
    Config::load(&config).expect("a sticky directory");
    mode(&secrets, 0o700);

    // The config file's own directory, and one further up.
    for open in [&dir, &top.path().to_path_buf()] {
        mode(open, 0o777);
        let err = Config::load(&config).unwrap_err().to_string();
        assert!(
            err.contains(&format!("the directory {} can be changed", open.display()))
                && err.contains(&format!("in place of it; `chmod o-w {}`", open.display())),
            "{err}"
        );
        mode(open, 0o755);
    }
    Config::load(&config).expect("closed again");
}

/// The store's directory open to every account (0777, no sticky bit) is refused: any of
/// them could delete the database and the seed key (a new key made at the next start,
/// every enrollment gone) or put their own in place, whatever the files' modes.
#[test]
fn a_store_in_a_directory_every_account_may_change_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let top = tempfile::tempdir().unwrap();
    let config = top.path().join("radmfa.toml");
    let state = top.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let text = "[ldap]\nurls = [\"ldap://127.0.0.1\"]\nbase_dn = \"dc=example,dc=org\"\nbind_dn = \"\"\nbind_password = \"\"\n\
                [store]\npath = \"state/radmfa.db\"\nkey_file = \"keys/radmfa.key\"\n\
                [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"0123456789abcdef\"\n";
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let keys = top.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let mode = |d: &std::path::Path, m| {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(m)).unwrap()
    };
    Config::load(&config).expect("private directories");
    // The state directory given for the database file: named as such, not taken for a
    // database whose key file is missing.
    let dir_text = text.replace("path = \"state/radmfa.db\"", "path = \"state\"");
    std::fs::write(&config, &dir_text).unwrap();
    let err = Config::load(&config).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "store.path: {} is a directory; give the database file's path (such as {})",
            state.display(),
            state.join("radmfa.db").display()
        )),
        "{err}"
    );
    std::fs::write(&config, text).unwrap();
    for (open, key) in [(&state, "store.path"), (&keys, "store.key_file")] {
        mode(open, 0o777);
        let err = Config::load(&config).unwrap_err().to_string();
        assert!(
            err.contains(key)
                && err.contains(&format!("the directory {} can be changed", open.display()))
                && err.contains(&format!("chmod o-w {}", open.display())),
            "{err}"
        );
        mode(open, 0o1777);
        Config::load(&config).expect("a sticky directory");
        mode(open, 0o755);
    }
}
