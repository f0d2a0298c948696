//! The State attribute of an Access-Challenge: a fresh unguessable value per challenge.
//! The store keeps only its SHA-256, so a copy of the database cannot answer a challenge.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes of randomness in a State (RFC 2865 leaves the size to us; ≥ 16 is the requirement).
pub const STATE_LEN: usize = 32;

pub fn new_state() -> Vec<u8> {
    let mut s = vec![0u8; STATE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

pub fn state_hash(state: &[u8]) -> Vec<u8> {
    Sha256::digest(state).to_vec()
}

/// What the first request carried that the follow-up may lack, kept with the challenge.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChallengeContext {
    pub client_ip: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// What this prompt waits for; absent (older challenges) means TOTP.
    #[serde(default)]
    pub method: Option<crate::mfa::method::Method>,
    /// The SMS or call transaction the prompt belongs to.
    #[serde(default)]
    pub oob: Option<String>,
    /// The E.164 number in use, so a switch or resend needs no directory search.
    #[serde(default)]
    pub phone: Option<String>,
    /// Methods the user may switch to at this prompt (allowed by the client and usable).
    #[serde(default)]
    pub methods: Vec<crate::mfa::method::Method>,
    /// The user's directory entry, for the client's group_attributes at the accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_unique_and_long() {
        let a = new_state();
        let b = new_state();
        assert_eq!(a.len(), STATE_LEN);
        assert_ne!(a, b);
        assert_eq!(state_hash(&a).len(), 32);
        assert_ne!(state_hash(&a), a);
    }
}
