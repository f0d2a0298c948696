//! Seeds as files write them: Base32 (what authenticator apps and the Azure MFA Server CSV
//! use) or hex (what OATH CSV exports use).

use std::sync::OnceLock;

use data_encoding::Encoding;

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// Base32 where the layout says so; otherwise hex if the value is hex, else Base32.
    Auto,
    Hex,
    Base32,
}

impl KeyEncoding {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(KeyEncoding::Auto),
            "hex" => Some(KeyEncoding::Hex),
            "base32" => Some(KeyEncoding::Base32),
            _ => None,
        }
    }
}

/// Base32 without padding that tolerates non-zero trailing bits, which some vendors' seeds
/// have: refusing them would refuse real tokens.
fn base32() -> &'static Encoding {
    static B32: OnceLock<Encoding> = OnceLock::new();
    B32.get_or_init(|| {
        let mut spec = data_encoding::BASE32_NOPAD.specification();
        spec.check_trailing_bits = false;
        spec.encoding().expect("valid Base32 specification")
    })
}

/// Base32, case-insensitive, ignoring spaces, dashes and `=` padding.
pub fn decode_base32(text: &str) -> Result<Secret, String> {
    let clean: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '=' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if clean.is_empty() {
        return Err("secret is empty".into());
    }
    if let Some(bad) = clean.chars().find(|c| !matches!(c, 'A'..='Z' | '2'..='7')) {
        return Err(format!(
            "secret is not valid Base32 (character {bad:?}; Base32 uses A-Z and 2-7)"
        ));
    }
    base32()
        .decode(clean.as_bytes())
        .map(Secret::new)
        .map_err(|_| format!("secret is not valid Base32 ({} characters)", clean.len()))
}

pub fn decode_hex(text: &str) -> Result<Secret, String> {
    let clean: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '-'))
        .collect();
    if clean.is_empty() {
        return Err("secret is empty".into());
    }
    hex::decode(&clean)
        .map(Secret::new)
        .map_err(|_| "secret is not valid hex".to_string())
}

fn looks_hex(text: &str) -> bool {
    let t = text.trim();
    t.len().is_multiple_of(2) && !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Decodes a seed. `base32_layout`: the file layout defines the column as Base32 (the Azure
/// MFA Server CSV), so `Auto` means Base32 there.
pub fn decode_key(
    text: &str,
    encoding: KeyEncoding,
    base32_layout: bool,
) -> Result<Secret, String> {
    let t = text.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return decode_hex(h);
    }
    match encoding {
        KeyEncoding::Hex => decode_hex(t),
        KeyEncoding::Base32 => decode_base32(t),
        // The layout says Base32, the value is hex (a header with no type column, the
        // export of a tool that writes hex): the error says how to read it as hex.
        KeyEncoding::Auto if base32_layout => decode_base32(t).map_err(|e| {
            if looks_hex(t) {
                format!("{e}; it is valid hex: if the file's secrets are hex, import with --key-encoding hex")
            } else {
                e
            }
        }),
        KeyEncoding::Auto if looks_hex(t) => decode_hex(t),
        KeyEncoding::Auto => decode_base32(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_forgiving_about_case_spaces_and_padding() {
        let want = b"12345678901234567890";
        for s in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
        ] {
            assert_eq!(decode_base32(s).unwrap().expose(), want, "{s}");
        }
        let e = decode_base32("GEZDGNBVGY3TQOJ1").unwrap_err();
        assert!(e.contains("Base32") && e.contains("'1'"), "{e}");
    }

    #[test]
    fn auto_prefers_the_layout_then_hex() {
        let hex = "3132333435363738393031323334353637383930";
        assert_eq!(
            decode_key(hex, KeyEncoding::Auto, false).unwrap().expose(),
            b"12345678901234567890"
        );
        assert!(
            decode_key(hex, KeyEncoding::Auto, true).is_err(),
            "'0','1','8','9' are not Base32"
        );
        assert_eq!(
            decode_key(&format!("0x{hex}"), KeyEncoding::Auto, true)
                .unwrap()
                .expose(),
            b"12345678901234567890"
        );
    }
}
