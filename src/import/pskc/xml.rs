//! Reading untrusted XML safely: roxmltree refuses any DTD (so no entity expansion, no
//! external entities, no billion laughs), and we bound size, node count and nesting depth
//! before walking the tree.

use roxmltree::{Document, Node, ParsingOptions};

use crate::import::{ImportError, MAX_FILE_BYTES};

/// A real PSKC file has about 30 nodes per key; this allows well over 100,000 keys.
pub const MAX_NODES: u32 = 5_000_000;
/// PSKC nests about 8 deep; anything far deeper is not PSKC.
pub const MAX_DEPTH: usize = 32;
/// No PSKC element has more than about 6 attributes (namespace declarations included).
/// roxmltree compares each attribute with the element's earlier ones: 80,000 on one tag
/// took 7.6 s, and the count limits nothing else about attributes.
pub const MAX_ATTRIBUTES: usize = 64;
/// Namespace declarations in scope at once (a PSKC file declares a handful on its root).
/// An element that declares one copies every one in scope and compares each with the
/// others: 31 nested elements of 64 declarations each made every leaf below cost 2.3 ms.
pub const MAX_NAMESPACES_IN_SCOPE: usize = 64;

pub fn parse(text: &str) -> Result<Document<'_>, ImportError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge {
            size: text.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    // roxmltree recurses per nesting level: check the depth on the raw text first, so a
    // deeply nested file is refused before it can exhaust the stack.
    prescan_depth(text.as_bytes())?;
    let opts = ParsingOptions {
        // Explicit although it is the default: a DTD is where entity attacks live.
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    let doc =
        Document::parse_with_options(text, opts).map_err(|e| ImportError::Xml(e.to_string()))?;
    // Iterative walk (no recursion on attacker-controlled depth).
    let mut stack = vec![(doc.root(), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(ImportError::Xml(format!(
                "elements nested more than {MAX_DEPTH} deep"
            )));
        }
        stack.extend(
            node.children()
                .filter(Node::is_element)
                .map(|c| (c, depth + 1)),
        );
    }
    Ok(doc)
}

/// A lexical pass over the markup counting element depth (comments, processing
/// instructions, CDATA and quoted attribute values skipped). It refuses DTDs outright and
/// anything nested deeper than [`MAX_DEPTH`]; everything else is left to the real parser.
fn prescan_depth(b: &[u8]) -> Result<(), ImportError> {
    let err = |m: &str| Err(ImportError::Xml(m.to_string()));
    let find = |from: usize, pat: &[u8]| {
        b[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| from + p + pat.len())
    };
    let (mut i, mut depth) = (0usize, 0usize);
    // Namespace declarations made by each open element, and their sum.
    let (mut declared, mut in_scope) = (Vec::<usize>::new(), 0usize);
    while let Some(p) = b[i..].iter().position(|&c| c == b'<') {
        i += p;
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->").unwrap_or(b.len());
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(i + 9, b"]]>").unwrap_or(b.len());
        } else if rest.starts_with(b"<?") {
            i = find(i + 2, b"?>").unwrap_or(b.len());
        } else if rest.starts_with(b"<!") {
            return err("a DTD (<!DOCTYPE …>) is not allowed in a PSKC file");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            in_scope -= declared.pop().unwrap_or(0);
            i = find(i + 2, b">").unwrap_or(b.len());
        } else {
            // A start tag: to its '>', stepping over quoted attribute values, and
            // counting its attributes (an '=' outside quotes each).
            let mut j = i + 1;
            let mut quote = None;
            let mut attributes = 0usize;
            let mut namespaces = 0usize;
            while j < b.len() {
                match (quote, b[j]) {
                    (None, b'=') => {
                        // The attribute's name ends here: "xmlns" or "xmlns:prefix"
                        // (blanks allowed before the '=').
                        let name_end = b[..j]
                            .iter()
                            .rposition(|c| !c.is_ascii_whitespace())
                            .map_or(j, |e| e + 1);
                        let name_start = b[..name_end]
                            .iter()
                            .rposition(|c| c.is_ascii_whitespace() || *c == b'<')
                            .map_or(0, |s| s + 1);
                        let name = &b[name_start..name_end];
                        if name == b"xmlns" || name.starts_with(b"xmlns:") {
                            namespaces += 1;
                        }
                        attributes += 1;
                        if attributes > MAX_ATTRIBUTES {
                            return Err(ImportError::Xml(format!(
                                "an element with more than {MAX_ATTRIBUTES} attributes"
                            )));
                        }
                    }
                    (None, b'"' | b'\'') => quote = Some(b[j]),
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), b'<') => return err("'<' inside an attribute value"),
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if j >= b.len() {
                return err("unterminated start tag");
            }
            if in_scope + namespaces > MAX_NAMESPACES_IN_SCOPE {
                return Err(ImportError::Xml(format!(
                    "more than {MAX_NAMESPACES_IN_SCOPE} namespace declarations in scope"
                )));
            }
            if b[j - 1] != b'/' {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ImportError::Xml(format!(
                        "elements nested more than {MAX_DEPTH} deep"
                    )));
                }
                declared.push(namespaces);
                in_scope += namespaces;
            }
            i = j + 1;
        }
    }
    Ok(())
}

/// The first child element with this local name (namespaces vary between vendors and
/// drafts; the local names are what RFC 6030 fixes).
pub fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// Elements RFC 6030 allows once where they appear (`(parent, children)`), checked under
/// `node` and, for the value elements, under each of them. `child` takes the first of a
/// name: a second `<Data>` or `<Secret>` would be dropped without a word (and a counter in
/// it read as 0), so a file that repeats one is refused, naming it and its line. With
/// `skip_keys`, what is inside `<Key>` elements is left out (a package's own elements).
pub fn repeated_element(node: Node<'_, '_>, skip_keys: bool, lines: &Lines) -> Option<String> {
    const SINGLE: &[(&str, &[&str])] = &[
        ("KeyPackage", &["DeviceInfo", "CryptoModuleInfo"]),
        (
            "Key",
            &[
                "Issuer",
                "AlgorithmParameters",
                "KeyProfileId",
                "KeyReference",
                "FriendlyName",
                "Data",
                "UserId",
                "Policy",
            ],
        ),
        (
            "DeviceInfo",
            &[
                "Manufacturer",
                "SerialNo",
                "Model",
                "IssueNo",
                "DeviceBinding",
                "StartDate",
                "ExpiryDate",
                "UserId",
            ],
        ),
        (
            "AlgorithmParameters",
            &["Suite", "ChallengeFormat", "ResponseFormat"],
        ),
        (
            "Data",
            &["Secret", "Counter", "Time", "TimeInterval", "TimeDrift"],
        ),
        ("Secret", &["PlainValue", "EncryptedValue", "ValueMAC"]),
        ("Counter", &["PlainValue", "EncryptedValue", "ValueMAC"]),
        ("Time", &["PlainValue", "EncryptedValue", "ValueMAC"]),
        (
            "TimeInterval",
            &["PlainValue", "EncryptedValue", "ValueMAC"],
        ),
        ("TimeDrift", &["PlainValue", "EncryptedValue", "ValueMAC"]),
        (
            "Policy",
            &[
                "StartDate",
                "ExpiryDate",
                "PINPolicy",
                "NumberOfTransactions",
            ],
        ),
    ];
    let in_key = |n: &Node<'_, '_>| n.ancestors().any(|a| a.tag_name().name() == "Key");
    for n in node
        .descendants()
        .filter(|n| n.is_element() && !(skip_keys && in_key(n)))
    {
        let parent = n.tag_name().name();
        let Some((_, names)) = SINGLE.iter().find(|(p, _)| *p == parent) else {
            continue;
        };
        for name in *names {
            if let Some(second) = children(n, name).nth(1) {
                let line = lines.line(second);
                return Some(format!(
                    "<{parent}> has more than one <{name}> (the second on line {line}); it \
                     takes one"
                ));
            }
        }
    }
    None
}

pub fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// Follows a path of local names.
pub fn path<'a, 'i>(node: Node<'a, 'i>, names: &[&str]) -> Option<Node<'a, 'i>> {
    names.iter().try_fold(node, |n, name| child(n, name))
}

/// The trimmed text of the element at `names`, if present and non-empty.
pub fn text(node: Node<'_, '_>, names: &[&str]) -> Option<String> {
    let n = path(node, names)?;
    let t: String = n
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect();
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Line numbers of byte offsets, for messages. Built once per file: roxmltree's own lookup
/// counts from the start of the text each time, which over every key of a large file is
/// quadratic (minutes for a minified file of many thousand keys).
pub struct Lines {
    /// Byte offset of each '\n'.
    newlines: Vec<usize>,
}

impl Lines {
    pub fn of(text: &str) -> Lines {
        Lines {
            newlines: memchr_newlines(text),
        }
    }

    /// The 1-based line of a node's start.
    pub fn line(&self, node: Node<'_, '_>) -> usize {
        let at = node.range().start;
        self.newlines.partition_point(|&n| n < at) + 1
    }
}

fn memchr_newlines(text: &str) -> Vec<usize> {
    text.bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'\n')
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Untimed: how long a refusal takes is for the fuzz targets and benchmarks, not a unit
    // test's clock (a 10 s bound failed on a loaded CI machine while the parse was right).
    fn refused(text: &str) -> String {
        let Err(e) = parse(text) else {
            panic!("accepted")
        };
        e.to_string()
    }

    #[test]
    fn dtds_and_entities_are_refused() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<KeyContainer>&lol3;</KeyContainer>"#;
        assert!(refused(laughs).contains("DTD"), "{}", refused(laughs));
        // roxmltree itself refuses a DTD too (the pre-scan is not the only guard).
        let doc = Document::parse_with_options(
            laughs,
            ParsingOptions {
                allow_dtd: false,
                nodes_limit: 100,
            },
        );
        assert!(doc.unwrap_err().to_string().contains("DTD"));
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE k [<!ENTITY x SYSTEM "file:///etc/passwd">]><KeyContainer>&x;</KeyContainer>"#;
        assert!(refused(xxe).contains("DTD"));
        // No DTD at all: an undeclared entity is an error, never a lookup.
        assert!(!refused("<KeyContainer>&x;</KeyContainer>").is_empty());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let n = 200_000;
        let deep = format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        let e = refused(&deep);
        assert!(e.contains("deep") || e.contains("nodes"), "{e}");
        let shallow_but_too_deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert!(refused(&shallow_but_too_deep).contains("32 deep"));
    }

    #[test]
    fn huge_inputs_are_refused() {
        let big = format!("<a>{}</a>", "x".repeat(MAX_FILE_BYTES));
        assert!(refused(&big).contains("limit"));
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_NODES as usize + 1));
        assert!(refused(&many).contains("nodes"), "{}", refused(&many));
    }
}
