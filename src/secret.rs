//! `Secret`: a value that must never reach a log line, a Debug dump or an audit row.
//!
//! Shared secrets, bind passwords, user passwords, OTP codes and seeds all travel as `Secret`.
//! Its `Debug`/`Display` print `***`; the bytes are reachable only through `expose()`, so every
//! place that handles the raw value is greppable.

use std::fmt;

#[derive(Clone, Default)]
pub struct Secret(Vec<u8>);

/// In constant time for values of one length (only the length may show), so that no
/// comparison of secret material, now or added later, leaks how much of it matched.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Secret {}

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The raw bytes. Call sites are the only places secret material is touched.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8 text, if it is text (passwords, codes).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite before the allocation is freed, so a core dump holds less.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_masked() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), b"hunter2");
    }

    #[test]
    fn equal_when_the_bytes_are() {
        assert_eq!(Secret::from("hunter2"), Secret::from("hunter2"));
        assert_ne!(Secret::from("hunter2"), Secret::from("hunter3"));
        assert_ne!(Secret::from("hunter2"), Secret::from("hunter"));
        assert_eq!(Secret::default(), Secret::from(""));
    }
}
