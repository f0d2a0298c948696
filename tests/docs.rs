//! What an admin copies from README.md, docs/*.md and the commented examples in conf/*.toml
//! works: each ```toml block loads, each config key named in the prose exists, and each
//! `radmfa …` command line names subcommands and options the binary has.
//!
//! A block that is wrong on purpose (one showing an error) carries
//! `<!-- docs-test: skip: WHY -->` on the line before its fence; nothing else is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use radmfa::config::{Config, ConfigError};
use toml::{Table, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Doc {
    /// As the failure messages name it: `docs/ha.md`.
    name: String,
    text: String,
}

/// README.md and every docs/*.md: a new page is checked without anyone listing it here.
/// BENCHMARKS.md is left out: its command lines are records of past runs.
fn docs() -> Vec<Doc> {
    let mut paths = vec![root().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    paths.extend(pages);
    paths
        .into_iter()
        .map(|p| Doc {
            name: p.strip_prefix(root()).unwrap().display().to_string(),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect()
}

struct Fence {
    lang: String,
    /// 1-based line of the opening ```.
    line: usize,
    /// (1-based line, text without the fence's indentation).
    body: Vec<(usize, String)>,
    /// The reason a `<!-- docs-test: skip: WHY -->` gives.
    skip: Option<String>,
}

const SKIP_MARKER: &str = "<!-- docs-test: skip";

fn fences(doc: &Doc) -> Vec<Fence> {
    let lines: Vec<&str> = doc.text.lines().collect();
    let mut out = Vec::new();
    let mut open: Option<(usize, Fence)> = None;
    for (i, raw) in lines.iter().enumerate() {
        let indent = raw.len() - raw.trim_start().len();
        let trimmed = raw.trim();
        match open.take() {
            None if trimmed.starts_with("```") => {
                let marker = lines[..i]
                    .iter()
                    .rev()
                    .map(|l| l.trim())
                    .find(|l| !l.is_empty())
                    .filter(|l| l.starts_with(SKIP_MARKER));
                let skip = marker.map(|m| {
                    let why = m
                        .trim_start_matches(SKIP_MARKER)
                        .trim_end_matches("-->")
                        .trim()
                        .trim_start_matches(':')
                        .trim();
                    assert!(
                        !why.is_empty(),
                        "{}:{}: a skip marker must say why: `{SKIP_MARKER}: WHY -->`",
                        doc.name,
                        i + 1
                    );
                    why.to_string()
                });
                let fence = Fence {
                    lang: trimmed.trim_start_matches('`').trim().to_string(),
                    line: i + 1,
                    body: Vec::new(),
                    skip,
                };
                open = Some((indent, fence));
            }
            None => {}
            Some((_, fence)) if trimmed == "```" => out.push(fence),
            Some((ind, mut fence)) => {
                let strip = indent.min(ind);
                fence.body.push((i + 1, raw[strip..].to_string()));
                open = Some((ind, fence));
            }
        }
    }
    assert!(open.is_none(), "{}: a ``` fence is never closed", doc.name);
    out
}

/// Inline code spans outside fences: (1-based line of the span's start, its text with
/// line breaks as spaces). A span may run over a line break, not over a blank line.
fn spans(doc: &Doc) -> Vec<(usize, String)> {
    let fenced: BTreeSet<usize> = fences(doc)
        .iter()
        .flat_map(|f| f.line..=f.body.last().map_or(f.line, |b| b.0) + 1)
        .collect();
    let prose: Vec<&str> = doc
        .text
        .lines()
        .enumerate()
        .map(|(i, l)| if fenced.contains(&(i + 1)) { "" } else { l })
        .collect();
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in prose.iter().enumerate() {
        if line.trim().is_empty() {
            open = None;
            continue;
        }
        if let Some((_, text)) = open.as_mut() {
            text.push(' ');
        }
        for c in line.chars() {
            match (c, open.take()) {
                ('`', None) => open = Some((i + 1, String::new())),
                ('`', Some((at, text))) => {
                    if !text.trim().is_empty() {
                        out.push((at, text.split_whitespace().collect::<Vec<_>>().join(" ")));
                    }
                }
                (c, Some((at, mut text))) => {
                    text.push(c);
                    open = Some((at, text));
                }
                (_, None) => {}
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Config snippets
// ---------------------------------------------------------------------------------------

/// The sample every fragment is laid over: conf/radmfa.toml is the complete one (directory,
/// SMS, calls and callbacks, an RD Gateway client), so a fragment that relies on those, as
/// the RD Gateway page's does, loads as it would in an admin's file.
fn base() -> Table {
    let text = std::fs::read_to_string(root().join("conf/radmfa.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

/// Where a fragment's bare client keys (`remember_second_factor_secs = 600`,
/// `[[client.group_attributes]]`) go: the client a previous block of the same page showed,
/// else the sample's first client, a plain VPN.
#[derive(Clone, Default)]
struct ClientContext(Option<String>);

/// Lays `fragment` over `config` as an admin would paste it into their file.
fn lay_over(config: &mut Table, fragment: &Table, context: &ClientContext) {
    let mut client_keys = Table::new();
    for (key, value) in fragment {
        match (key.as_str(), value) {
            ("client", Value::Array(entries)) => {
                let clients = config
                    .entry("client")
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                    .unwrap();
                for entry in entries {
                    // A page shows a whole entry: it takes the place of the sample's entry
                    // of that name (whose address it often shares) rather than adding to it.
                    let name = entry.get("name");
                    match clients.iter_mut().find(|c| c.get("name") == name) {
                        Some(c) => *c = entry.clone(),
                        None => clients.push(entry.clone()),
                    }
                }
            }
            ("client", Value::Table(keys)) => client_keys.extend(keys.clone()),
            (_, Value::Table(section)) => {
                let replace = key == "store"
                    && section.get("type")
                        != config
                            .get("store")
                            .and_then(|s| s.get("type"))
                            .or(Some(&Value::from("sqlite")));
                if replace || !config.contains_key(key) {
                    // Switching store type drops the other type's keys, as ha.md says
                    // (`path` only applies to SQLite).
                    config.insert(key.clone(), value.clone());
                } else {
                    merge(config.get_mut(key).unwrap(), value);
                }
            }
            _ => {
                client_keys.insert(key.clone(), value.clone());
            }
        }
    }
    if !client_keys.is_empty() {
        let clients = config["client"].as_array_mut().unwrap();
        let target = match &context.0 {
            Some(name) => clients
                .iter_mut()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
                .unwrap(),
            None => &mut clients[0],
        };
        merge(target, &Value::Table(client_keys));
    }
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Table(a), Value::Table(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(old) => merge(old, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (into, from) => *into = from.clone(),
    }
}

/// The files a config names exist on the admin's host; here they are stand-ins in `dir`, so
/// that what is checked is the config and not this machine. Only existence, the first line
/// of a secret file and the mode are looked at when a config loads.
fn stand_in_files(value: &mut Value, key: &str, dir: &Path) {
    match value {
        Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                stand_in_files(v, k, dir);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| stand_in_files(v, key, dir)),
        Value::String(path) if key.ends_with("_file") || key == "ssl_root_cert" => {
            let file = dir.join(path.trim_start_matches('/').replace('/', "_"));
            let content = if key == "url_file" {
                "postgres://radmfa:stand-in-password@db.example.org/radmfa\n"
            } else {
                "stand-in-secret-0123456789abcdef\n"
            };
            std::fs::write(&file, content).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            *path = file.display().to_string();
        }
        _ => {}
    }
}

/// The loader's error without what only applies to the file made here: its path, and the
/// line and column in it.
fn describe(e: &ConfigError) -> String {
    match e {
        ConfigError::Parse { message, .. } => match message.rfind(" (line ") {
            Some(i) => message[..i].to_string(),
            None => message.clone(),
        },
        e => e.to_string(),
    }
}

fn load(config: &Table, dir: &Path) -> Result<Config, ConfigError> {
    let mut value = Value::Table(config.clone());
    stand_in_files(&mut value, "", dir);
    let text = toml::to_string(&value).unwrap();
    Config::parse(&text, &dir.join("radmfa.toml"))
}

/// An error about the snippet's own keys and values: unknown, of the wrong type, or (for
/// `own_value`, a key the snippet gives a value) a value the loader refuses for that key. A
/// "missing field" is about keys the snippet does not show (a section shown in part), and
/// other keys' refusals are about values taken together, which a one-line example cannot be
/// held to.
fn shape_error(result: Result<Config, ConfigError>, own_value: Option<&str>) -> Option<String> {
    match result {
        Err(e @ ConfigError::Parse { .. }) if !e.to_string().contains("missing field") => {
            Some(describe(&e))
        }
        Err(ConfigError::Invalid { key, problem })
            if own_value.is_some_and(|own| key.rsplit('.').next() == Some(own)) =>
        {
            Some(format!("{key}: {problem}"))
        }
        _ => None,
    }
}

/// The top-level sections the loader knows, from its own refusal of an unknown one, so a
/// new section needs no change here.
fn sections() -> &'static Vec<String> {
    static SECTIONS: OnceLock<Vec<String>> = OnceLock::new();
    SECTIONS.get_or_init(|| {
        let err = Config::parse("zz_not_a_section = 1", Path::new("radmfa.toml"))
            .unwrap_err()
            .to_string();
        let expected = err.split("expected one of").nth(1).unwrap_or("");
        let names: Vec<String> = expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        assert!(names.contains(&"ldap".to_string()), "sections from {err:?}");
        names
    })
}

#[test]
fn toml_blocks_in_the_docs_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        let mut context = ClientContext::default();
        for fence in fences(&doc).into_iter().filter(|f| f.lang == "toml") {
            if let Some(why) = &fence.skip {
                eprintln!("skipped on purpose: {}:{}: {why}", doc.name, fence.line);
                continue;
            }
            let at = format!("{}:{}", doc.name, fence.line);
            let text: String = fence.body.iter().map(|(_, l)| format!("{l}\n")).collect();
            let fragment: Table = match toml::from_str(&text) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{at}: not TOML: {}", e.message()));
                    continue;
                }
            };
            let mut config = base();
            lay_over(&mut config, &fragment, &context);
            if let Err(e) = load(&config, dir.path()) {
                failures.push(format!("{at}: {}", describe(&e)));
            }
            checked += 1;
            if let Some(Value::Array(entries)) = fragment.get("client") {
                let last = entries.last().and_then(|c| c.get("name"));
                context = ClientContext(last.and_then(Value::as_str).map(str::to_string));
            }
        }
    }
    eprintln!("{checked} toml blocks loaded");
    assert!(checked >= 5, "only {checked} toml blocks found in the docs");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The sample configs' commented-out lines (`# url_file = "…"`) are meant to be uncommented:
/// each run of them must name keys its section has, with values of the right type. They are
/// alternatives to the lines around them (`url` with a SQLite store), so only their shape is
/// held to, not the file they would make.
#[test]
fn commented_examples_in_the_sample_configs_have_known_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut confs: Vec<PathBuf> = std::fs::read_dir(root().join("conf"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    confs.sort();
    for conf in confs {
        let name = conf.strip_prefix(root()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&conf).unwrap();
        let whole: Table = toml::from_str(&text).unwrap();
        // The section a line is in: the last header above it, commented or not.
        let mut header = String::new();
        let mut clients_seen = 0usize;
        let mut run: Vec<(usize, String)> = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let toml_line = line
                .trim_start()
                .strip_prefix('#')
                // `# # username = …`: an alternative inside a commented-out example.
                .map(|l| l.trim_start_matches(['#', ' ']).trim())
                .filter(|l| !l.is_empty() && toml::from_str::<Table>(l).is_ok());
            let live = !line.trim_start().starts_with('#') && !line.trim().is_empty();
            if let Some(l) = toml_line {
                // A `[[client]]` entry's keys go to that entry (lay_over's context).
                if run.is_empty() && !l.starts_with('[') && header != "[[client]]" {
                    run.push((0, header.clone()));
                }
                run.push((i + 1, l.to_string()));
            }
            let run_ends = toml_line.is_none() || i + 1 == lines.len();
            if run_ends && !run.is_empty() {
                checked += 1;
                let at = run.iter().find(|(n, _)| *n > 0).unwrap().0;
                let snippet: String = run.iter().map(|(_, l)| format!("{l}\n")).collect();
                run.clear();
                let fragment: Table = toml::from_str(&snippet).unwrap_or_else(|e| {
                    panic!("{name}:{at}: lines that parse alone do not together: {e}")
                });
                let mut config = whole.clone();
                let context = ClientContext(
                    whole["client"]
                        .as_array()
                        .and_then(|c| c.get(clients_seen.max(1) - 1))
                        .and_then(|c| c.get("name"))
                        .and_then(Value::as_str)
                        .map(str::to_string),
                );
                lay_over(&mut config, &fragment, &context);
                if let Some(e) = shape_error(load(&config, dir.path()), None) {
                    failures.push(format!("{name}:{at}: {e}"));
                }
            }
            let candidate = if live { Some(line.trim()) } else { toml_line };
            if let Some(h) = candidate.filter(|l| l.starts_with('[')) {
                header = h.split('#').next().unwrap().trim().to_string();
                if live && header == "[[client]]" {
                    clients_seen += 1;
                }
            }
        }
    }
    eprintln!("{checked} commented examples checked");
    assert!(
        checked >= 20,
        "only {checked} commented examples in conf/*.toml"
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Where a key named in the prose is tried: a section (`ldap.attributes`; `upstreams.NAME`
/// as a group of that name), or one of the sample's clients.
#[derive(Debug)]
enum Place {
    Section(String),
    Client(String),
    /// An item of that client's `[[client.group_attributes]]`.
    GroupAttributes(String),
}

/// Keys the prose names, `[sms] max_per_user = 5`, `[ldap] entry_cache_seconds`,
/// `store.key_file` or a client's `otp_mode = "inline"`: an admin types them as written.
#[test]
fn config_keys_named_in_the_docs_exist() {
    let dir = tempfile::tempdir().unwrap();
    // The sample, plus what a one-line example may lean on: an upstream group for
    // `primary = "upstream"`, a gateway for `provider = "http"`.
    let mut base = base();
    let extra: Table = toml::from_str(
        r#"
        [upstream]
        servers = ["192.0.2.50:1812"]
        secret = "stand-in-upstream-secret"
        [http_sms]
        url = "https://sms.example.org/send?to={phone}&text={message}"
        "#,
    )
    .unwrap();
    base.extend(extra);
    load(&base, dir.path()).expect("the base for prose keys loads");
    let clients: Vec<String> = base["client"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    let known = sections();
    let mut failures = Vec::new();
    let mut checked = 0;
    let parse_key_value = |text: &str| -> Option<(String, Value)> {
        let t: Table = toml::from_str(text).ok()?;
        let (k, v) = t.into_iter().next()?;
        (!matches!(v, Value::Table(_))).then_some((k, v))
    };
    let is_key = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    for doc in docs() {
        for (line, span) in spans(&doc) {
            let at = format!("{}:{line}", doc.name);
            // (section, or None for "wherever it fits"; key; value, None when only the key
            // is named)
            let (section, key, value): (Option<String>, String, Option<Value>) =
                if let Some(rest) = span.strip_prefix('[') {
                    let close = rest.find(']').unwrap_or(rest.len());
                    let header = rest[..close].trim_start_matches('[');
                    let top = header.split('.').next().unwrap();
                    if !is_key(top) {
                        continue;
                    }
                    checked += 1;
                    if !known.iter().any(|s| s == top) {
                        failures.push(format!("{at}: `{span}`: there is no section [{top}]"));
                        continue;
                    }
                    let tail = rest[close..].trim_start_matches(']').trim();
                    let section = Some(header.to_string());
                    if tail.is_empty() {
                        continue;
                    } else if is_key(tail) {
                        (section, tail.to_string(), None)
                    } else if let Some((k, v)) = parse_key_value(tail) {
                        (section, k, Some(v))
                    } else {
                        continue;
                    }
                } else if let Some((s, k)) = span
                    .split_once('.')
                    .filter(|(s, k)| known.iter().any(|x| x == s) && is_key(k))
                {
                    checked += 1;
                    (Some(s.to_string()), k.to_string(), None)
                } else if span.contains(" = ") && is_key(span.split(" = ").next().unwrap()) {
                    match parse_key_value(&span) {
                        Some((k, v)) => {
                            checked += 1;
                            (None, k, Some(v))
                        }
                        None => continue,
                    }
                } else {
                    continue;
                };
            // A placeholder (`upstream = "NAME"`) stands for a value: only the key is held.
            let value = value.filter(|v| {
                v.as_str()
                    .is_none_or(|s| s.is_empty() || s != s.to_uppercase())
            });
            // With no value, the key is given one of a type no key has, so that the only
            // question is whether it is known.
            let probe = value
                .clone()
                .unwrap_or_else(|| Value::Datetime("1979-05-27T07:32:00Z".parse().unwrap()));
            let places: Vec<Place> = match section.as_deref() {
                Some("client") => clients.iter().cloned().map(Place::Client).collect(),
                Some(s) => vec![Place::Section(s.to_string())],
                None => known
                    .iter()
                    // `upstreams` holds groups, each with `[upstream]`'s keys.
                    .filter(|s| *s != "client" && *s != "upstreams")
                    .cloned()
                    .chain(["ldap.attributes".to_string()])
                    .map(Place::Section)
                    .chain(clients.iter().cloned().map(Place::Client))
                    .chain(clients.iter().take(1).cloned().map(Place::GroupAttributes))
                    .collect(),
            };
            let mut errors = Vec::new();
            for place in &places {
                let mut config = base.clone();
                let mut fragment = Table::new();
                fragment.insert(key.clone(), probe.clone());
                let context = match place {
                    Place::Client(name) => ClientContext(Some(name.clone())),
                    Place::GroupAttributes(name) => {
                        let mut item = Table::from_iter([(
                            "group".to_string(),
                            Value::from("cn=admins,ou=groups,dc=example,dc=org"),
                        )]);
                        item.extend(fragment);
                        fragment = Table::from_iter([(
                            "group_attributes".to_string(),
                            Value::Array(vec![item.into()]),
                        )]);
                        ClientContext(Some(name.clone()))
                    }
                    Place::Section(path) => {
                        for part in path.split('.').rev() {
                            let part = if part == part.to_uppercase() {
                                "group"
                            } else {
                                part
                            };
                            fragment = Table::from_iter([(part.to_string(), fragment.into())]);
                        }
                        ClientContext::default()
                    }
                };
                lay_over(&mut config, &fragment, &context);
                let error = shape_error(load(&config, dir.path()), value.as_ref().map(|_| &*key));
                match error {
                    // Named without a value: the probe's type is refused, the key is known.
                    Some(e) if value.is_none() && !e.contains("unknown field") => {
                        errors.clear();
                        break;
                    }
                    Some(e) => errors.push((place, e)),
                    None => {
                        errors.clear();
                        break;
                    }
                }
            }
            if !errors.is_empty() {
                // Where the key is known, what is wrong with its value; else that it is
                // known nowhere.
                let about_value: Vec<String> = errors
                    .iter()
                    .filter(|(_, e)| !e.contains("unknown field"))
                    .map(|(p, e)| format!("{p:?}: {e}"))
                    .collect();
                let why = match (&section, about_value.is_empty()) {
                    (Some(_), true) => errors[0].1.clone(),
                    (None, true) => "no section or client has this key".to_string(),
                    (_, false) => about_value[0].clone(),
                };
                failures.push(format!("{at}: `{span}`: {why}"));
            }
        }
    }
    eprintln!("{checked} config keys and sections named in the docs checked");
    assert!(
        checked >= 40,
        "only {checked} config keys found in the docs"
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Command lines
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Node {
    subcommands: Vec<String>,
    /// Long options, and whether each takes a value.
    longs: BTreeMap<String, bool>,
    shorts: BTreeMap<char, bool>,
}

/// The whole command tree as `--help` shows it: what an admin reads, hidden options left out.
fn cli() -> &'static BTreeMap<Vec<String>, Node> {
    static TREE: OnceLock<BTreeMap<Vec<String>, Node>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = BTreeMap::new();
        let mut todo = vec![Vec::<String>::new()];
        while let Some(path) = todo.pop() {
            let out = Command::new(env!("CARGO_BIN_EXE_radmfa"))
                .args(&path)
                .arg("--help")
                .env_remove("RADMFA_CONFIG")
                .output()
                .unwrap();
            assert!(out.status.success(), "radmfa {path:?} --help failed");
            let node = parse_help(&String::from_utf8(out.stdout).unwrap());
            for sub in node.subcommands.iter().filter(|s| *s != "help") {
                let mut p = path.clone();
                p.push(sub.clone());
                todo.push(p);
            }
            tree.insert(path, node);
        }
        tree
    })
}

fn parse_help(help: &str) -> Node {
    let mut node = Node::default();
    let mut section = "";
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        match section {
            "Commands:" if line.starts_with("  ") && !line.starts_with("   ") => {
                node.subcommands.push(first.to_string());
            }
            "Options:" if first.starts_with('-') => {
                let names: Vec<&str> = words
                    .iter()
                    .take_while(|w| w.starts_with('-'))
                    .map(|w| w.trim_end_matches(','))
                    .collect();
                let takes_value = words
                    .get(names.len())
                    .is_some_and(|w| w.starts_with('<') || w.starts_with("[<"));
                for n in names {
                    if let Some(long) = n.strip_prefix("--") {
                        let long = long.split(['=', '[']).next().unwrap();
                        node.longs.insert(long.to_string(), takes_value);
                    } else if let Some(c) = n.strip_prefix('-').and_then(|s| s.chars().next()) {
                        node.shorts.insert(c, takes_value);
                    }
                }
            }
            _ => {}
        }
    }
    node
}

/// Shell words, quotes kept together; `#` at a word's start ends the line.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if word.is_empty() => break,
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The radmfa invocations in one shell line: the words after `radmfa` in each command of
/// a pipeline or list, past `VAR=value` and `sudo …` in front. A `|` inside `[…]` is a
/// usage synopsis's "or", not a pipe.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut depth = 0i32;
    for w in words(line) {
        if depth == 0 && matches!(w.as_str(), "|" | "||" | "&&" | ";") {
            commands.push(Vec::new());
            continue;
        }
        depth += w.matches('[').count() as i32 - w.matches(']').count() as i32;
        commands.last_mut().unwrap().push(w);
    }
    commands
        .into_iter()
        .filter_map(|c| {
            let mut it = c.into_iter().peekable();
            while it
                .peek()
                .is_some_and(|w| w.contains('=') && !w.starts_with('-'))
            {
                it.next();
            }
            if it.peek().is_some_and(|w| w == "sudo") {
                it.next();
                while let Some(w) = it.next_if(|w| w.starts_with('-')) {
                    if w == "-u" || w == "-g" {
                        it.next();
                    }
                }
            }
            let program = it.next()?;
            (program == "radmfa" || program.ends_with("/radmfa")).then(|| it.collect())
        })
        .collect()
}

/// What is wrong with `radmfa ARGS`: a subcommand or an option the binary does not have.
fn check_invocation(args: &[String]) -> Vec<String> {
    let tree = cli();
    let mut problems = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let node = &tree[&path];
        let word = args[i]
            .trim_start_matches(['[', '('])
            .trim_end_matches([']', ')', ',']);
        i += 1;
        if word.is_empty() || word == "|" {
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline_value) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let known = if let Some(prefix) = name.strip_suffix('*') {
                node.longs.keys().any(|k| k.starts_with(prefix))
            } else {
                node.longs.contains_key(name)
            };
            if !known {
                problems.push(format!("`radmfa {}` has no --{name}", path.join(" ")));
            } else if node.longs.get(name) == Some(&true) && !inline_value {
                i += 1;
            }
        } else if word.len() == 2 && word.starts_with('-') {
            let c = word.chars().nth(1).unwrap();
            match node.shorts.get(&c) {
                None => problems.push(format!("`radmfa {}` has no {word}", path.join(" "))),
                Some(true) => i += 1,
                Some(false) => {}
            }
        } else if !node.subcommands.is_empty() {
            // A placeholder (`<command>`, `…`) names no subcommand to check.
            if word.starts_with('<') || word.contains('…') || word.contains("...") {
                break;
            }
            let alternatives: Vec<&str> = word.split('|').collect();
            for a in &alternatives {
                if !node.subcommands.iter().any(|s| s == a) {
                    problems.push(format!(
                        "`radmfa {}` has no subcommand {a:?}",
                        path.join(" ")
                    ));
                }
            }
            if alternatives.len() > 1 || !problems.is_empty() {
                break;
            }
            path.push(word.to_string());
        }
    }
    problems
}

#[test]
fn command_lines_in_the_docs_match_the_cli() {
    let tree = cli();
    assert!(
        tree.len() > 20,
        "radmfa --help shows {} commands",
        tree.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut skipped = Vec::new();
    let top: Vec<&String> = tree[&Vec::new()].subcommands.iter().collect();
    for doc in docs() {
        for fence in fences(&doc) {
            if !matches!(
                fence.lang.as_str(),
                "" | "sh" | "console" | "bash" | "shell"
            ) {
                continue;
            }
            if let Some(why) = &fence.skip {
                skipped.push(format!("{}:{}: {why}", doc.name, fence.line));
                continue;
            }
            // Join `\` continuations, and a usage synopsis's indented `[--option]` lines.
            let mut lines: Vec<(usize, String)> = Vec::new();
            let mut continued = false;
            for (n, l) in &fence.body {
                let l = l
                    .strip_prefix("$ ")
                    .filter(|_| fence.lang == "console")
                    .unwrap_or(l);
                let synopsis = l.trim_start().starts_with('[') && l.starts_with(' ');
                match lines.last_mut() {
                    Some((_, prev)) if continued || synopsis => {
                        prev.push(' ');
                        prev.push_str(l.trim_end_matches('\\'));
                    }
                    _ => lines.push((*n, l.trim_end_matches('\\').to_string())),
                }
                continued = l.trim_end().ends_with('\\');
            }
            for (n, line) in lines {
                for args in invocations(&line) {
                    checked += 1;
                    for p in check_invocation(&args) {
                        failures.push(format!("{}:{n}: {p}", doc.name));
                    }
                }
            }
        }
        for (n, span) in spans(&doc) {
            let ws = words(&span);
            let Some(first) = ws.first() else { continue };
            let args: Vec<String> = if let Some(found) = invocations(&span).pop() {
                found
            } else if first.starts_with("--") || (first.starts_with('-') && first.len() == 2) {
                // An option named alone (`--dry-run`): some command must have it.
                checked += 1;
                let name = first.split('=').next().unwrap();
                let found = tree.values().any(|node| {
                    if let Some(long) = name.strip_prefix("--") {
                        match long.strip_suffix('*') {
                            Some(p) => node.longs.keys().any(|k| k.starts_with(p)),
                            None => node.longs.contains_key(long),
                        }
                    } else {
                        node.shorts.contains_key(&name.chars().nth(1).unwrap())
                    }
                });
                if !found {
                    failures.push(format!("{}:{n}: no radmfa command has {name}", doc.name));
                }
                continue;
            } else if top.contains(&first)
                && ws.get(1).is_some_and(|second| {
                    let node = &tree[&vec![first.clone()]];
                    node.subcommands.contains(second)
                        || (node.subcommands.is_empty() && second.starts_with('-'))
                })
            {
                // `token list [--json]` in a list of commands: the `radmfa` is understood.
                // A span whose second word is no subcommand (`config system global`, a
                // FortiGate command) is not one of ours.
                ws
            } else {
                continue;
            };
            checked += 1;
            for p in check_invocation(&args) {
                failures.push(format!("{}:{n}: `{span}`: {p}", doc.name));
            }
        }
    }
    eprintln!("{checked} command lines checked");
    for s in &skipped {
        eprintln!("skipped on purpose: {s}");
    }
    assert!(
        checked >= 60,
        "only {checked} command lines found in the docs"
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
