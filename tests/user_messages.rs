//! Every text radmfa may show a user (a Reply-Message: a refusal's reason, a prompt) is in
//! docs/operations.md's "What the user sees", where the help desk finds it beside the audit
//! reason to look for. The texts are read from the sources: every string literal in
//! `src/pipeline` written as a sentence to a person (a capital, then lower case, ending in
//! a full stop, a question mark or the ": " a prompt ends with). Audit reasons and log
//! lines start in lower case, so they are not taken for one.

use std::path::Path;

/// The string literals of Rust source `text`, comments left out, escapes and line
/// continuations (`\` and the next line's indent) resolved.
fn literals(text: &str) -> Vec<String> {
    let b: Vec<char> = text.chars().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        match b[i] {
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '\'' => {
                // A char literal ('"', '\'') is skipped whole; a lifetime's quote alone.
                i += match (b.get(i + 1), b.get(i + 2), b.get(i + 3)) {
                    (Some('\\'), _, Some('\'')) => 4,
                    (Some(_), Some('\''), _) => 3,
                    _ => 1,
                };
            }
            'r' if b.get(i + 1) == Some(&'#') && b.get(i + 2) == Some(&'"') => {
                let start = i + 3;
                let mut j = start;
                while j + 1 < b.len() && !(b[j] == '"' && b[j + 1] == '#') {
                    j += 1;
                }
                out.push(b[start..j].iter().collect());
                i = j + 2;
            }
            '"' => {
                let (mut s, mut j) = (String::new(), i + 1);
                while j < b.len() && b[j] != '"' {
                    if b[j] == '\\' {
                        match b[j + 1] {
                            '\n' => {
                                j += 2;
                                while j < b.len() && b[j].is_whitespace() {
                                    j += 1;
                                }
                                continue;
                            }
                            'n' => s.push('\n'),
                            't' => s.push('\t'),
                            c => s.push(c),
                        }
                        j += 2;
                        continue;
                    }
                    s.push(b[j]);
                    j += 1;
                }
                out.push(s);
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Written to a person: "Wrong code.", "Enter the code sent to {}: ".
fn is_sentence(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(
        (chars.next(), chars.next()),
        (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_lowercase()
    ) && s.contains(' ')
        && (s.ends_with('.') || s.ends_with('?') || s.ends_with(": "))
}

/// The parts of `text` around its format placeholders (`{}`, `{name}`) that are words.
fn fixed_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        parts.push(rest[..open].to_string());
        rest = rest[open..]
            .find('}')
            .map_or("", |close| &rest[open + close + 1..]);
    }
    parts.push(rest.to_string());
    parts
        .into_iter()
        .filter(|p| p.split_whitespace().count() >= 2)
        .collect()
}

#[test]
fn every_message_to_a_user_is_in_the_help_desks_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let section = doc
        .split("## What the user sees")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/operations.md has a \"What the user sees\" section");
    let mut found = 0;
    let mut missing = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("src/pipeline"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Not the unit tests' own texts.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for lit in literals(code).iter().filter(|l| is_sentence(l)) {
            found += 1;
            for part in fixed_parts(lit) {
                if !section.contains(part.as_str()) {
                    missing.push(format!("{}: {part:?}", file.display()));
                }
            }
        }
    }
    assert!(
        found >= 30,
        "only {found} messages found: the scan is broken"
    );
    assert!(
        missing.is_empty(),
        "not in docs/operations.md, What the user sees:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_scan_reads_literals_as_the_compiler_does() {
    let src = "let a = 'x'; let q = '\"'; // \"Not this.\"\n\
               f(\"Wrong \\\n      code.\"); g(r#\"Raw \"text\" here.\"#);";
    assert_eq!(literals(src), ["Wrong code.", "Raw \"text\" here."]);
    assert!(is_sentence("Wrong code.") && is_sentence("Enter the code sent to {}: "));
    assert!(!is_sentence("wrong code") && !is_sentence("SMS code expired"));
    assert_eq!(
        fixed_parts("We are calling {}. Answer the call, then press Enter{}: "),
        ["We are calling ", ". Answer the call, then press Enter"]
    );
}
