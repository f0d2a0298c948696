//! The container's header alone — everything before its first `<KeyPackage>`, closed — read
//! as a document of its own. It holds the `EncryptionKey` and the `MACMethod` with its
//! encrypted `MACKey`, so what the file needs and whether the key or passphrase fits are
//! known in milliseconds: parsed whole first, a 51 MB file with a mistyped passphrase took
//! 15 s to say so. Where the header cannot be cut out (no `<KeyPackage>`, a comment or a
//! DTD in the way) the whole file is read as before; every check still runs on it.

use roxmltree::Node;

use super::envelope::{self, Envelope, Need};
use super::xml::{self, child, path, text};
use crate::import::{Decryption, ImportError};

/// The header as a document's text: the file up to its first `<KeyPackage>` (any prefix),
/// and the root's end tag.
fn header_text(text: &str) -> Option<String> {
    let mut root: Option<&str> = None;
    let mut at = 0;
    while let Some(found) = text[at..].find('<') {
        let start = at + found;
        let rest = &text[start + 1..];
        // The prolog's declaration and comments; a DTD is refused by the full parse.
        if rest.starts_with('?') || rest.starts_with('!') {
            if root.is_some() {
                return None;
            }
            at = start + 1;
            continue;
        }
        let end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
        let name = &rest[..end];
        match root {
            None => root = Some(name),
            Some(root) if name == "KeyPackage" || name.ends_with(":KeyPackage") => {
                return Some(format!("{}</{root}>", &text[..start]));
            }
            Some(_) => {}
        }
        at = start + 1;
    }
    None
}

/// The header's root element, if the header can be read on its own and is a PSKC
/// container's that names an `EncryptionKey`; `f` is given it.
fn with_header<T>(bytes: &[u8], f: impl FnOnce(Node<'_, '_>) -> T) -> Option<T> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header = header_text(text)?;
    let doc = xml::parse(&header).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "KeyContainer" || child(root, "EncryptionKey").is_none() {
        return None;
    }
    Some(f(root))
}

/// What an encrypted file needs, from its header; `None` where the whole file must say.
pub(super) fn need(bytes: &[u8]) -> Option<Result<Need, ImportError>> {
    with_header(bytes, envelope::need)
}

/// The file's envelope (its key checked against the MAC key) from its header; `None` where
/// the whole file must give it. Errors are the ones the whole file would give: the envelope
/// reads nothing but the header's elements, with one exception handled here: PBKDF2
/// without a KeyLength takes the length of the file's first cipher, which may be a value's.
pub(super) fn envelope(
    bytes: &[u8],
    decryption: &Decryption,
) -> Option<Result<Envelope, ImportError>> {
    with_header(bytes, |root| {
        let derived = path(root, &["EncryptionKey", "DerivedKey"]);
        let no_length = derived.is_some_and(|dk| {
            path(dk, &["KeyDerivationMethod", "PBKDF2-params"])
                .and_then(|p| text(p, &["KeyLength"]))
                .is_none()
        });
        let has_cipher = root
            .descendants()
            .any(|n| n.is_element() && n.tag_name().name() == "EncryptionMethod");
        if no_length && !has_cipher {
            return None;
        }
        Some(Envelope::open(root, decryption))
    })
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_cut_before_the_first_key_package() {
        let file = "<?xml version=\"1.0\"?>\n<!-- made by hand -->\n\
                    <pskc:KeyContainer xmlns:pskc=\"urn:x\"><pskc:MACMethod/>\n\
                    <pskc:KeyPackage><pskc:Key/></pskc:KeyPackage></pskc:KeyContainer>";
        assert_eq!(
            header_text(file).unwrap(),
            "<?xml version=\"1.0\"?>\n<!-- made by hand -->\n\
             <pskc:KeyContainer xmlns:pskc=\"urn:x\"><pskc:MACMethod/>\n</pskc:KeyContainer>"
        );
        let plain = "<KeyContainer><KeyPackage/></KeyContainer>";
        assert_eq!(header_text(plain).unwrap(), "<KeyContainer></KeyContainer>");
        // No KeyPackage, or a comment inside the header: the whole file says.
        assert_eq!(header_text("<KeyContainer></KeyContainer>"), None);
        assert_eq!(
            header_text("<KeyContainer><!-- <KeyPackage> --><KeyPackage/></KeyContainer>"),
            None
        );
    }
}
