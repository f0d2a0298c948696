//! App passwords for clients that cannot do a second factor: 100 random bits shown once,
//! stored as an argon2id PHC string. Users may type them with or without the dashes and in
//! any case; the hash covers the normalised form.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use std::sync::OnceLock;

use crate::secret::Secret;

/// Crockford-style alphabet without 0/o, 1/l/i: nothing to misread from a screen.
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const GROUPS: usize = 5;
const GROUP_LEN: usize = 4;

/// A fresh app password, e.g. `k7m2-x9qp-...` (5 groups of 4 from 31 symbols ≈ 99 bits).
pub fn generate() -> Secret {
    let mut rng = rand::rngs::OsRng;
    let groups: Vec<String> = (0..GROUPS)
        .map(|_| {
            (0..GROUP_LEN)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect()
        })
        .collect();
    Secret::from(groups.join("-"))
}

/// What is hashed and compared: lower case, no dashes or spaces.
pub fn normalise(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("hashing the app password: {0}")]
pub struct HashError(String);

/// argon2id with 4 MiB and one pass. An app password is ~99 random bits, so its strength is
/// its entropy, not the hash's work factor (which is what protects *chosen* passwords); a
/// cheap hash keeps logins on app-password clients fast and a flood of wrong passwords from
/// pinning the CPU. The parameters are stored in each PHC string, so they can change later.
fn hasher() -> Argon2<'static> {
    let params = Params::new(4096, 1, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &Secret) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let plain = normalise(password.expose_str().unwrap_or_default());
    hasher()
        .hash_password(plain.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Constant-time (inside argon2) check of a typed password against a PHC string.
pub fn verify(typed: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // The parameters come from the PHC string.
    Argon2::default()
        .verify_password(normalise(typed).as_bytes(), &parsed)
        .is_ok()
}

/// Does the same work as [`verify`] against one app password, for a user who holds none:
/// on a client that takes app passwords, every login is compared first, and a user without
/// any must cost the same, or the time would tell holders (who exist) from unknown names.
/// Compares with the hash of a random password made once per process; never matches.
pub fn verify_against_none(typed: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash(&generate()).expect("hashing a generated password"));
    let _ = verify(typed, phc);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_hash_verify() {
        let pw = generate();
        let s = pw.expose_str().unwrap().to_string();
        assert_eq!(s.len(), GROUPS * GROUP_LEN + GROUPS - 1);
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=4096,t=1,p=1$"), "{h}");
        assert!(!h.contains(&normalise(&s)));
        assert!(verify(&s, &h));
        assert!(verify(&s.to_uppercase().replace('-', " "), &h));
        assert!(!verify("not-it", &h));
        assert!(!verify(&s, "garbage"));
        assert_ne!(generate().expose(), pw.expose());
    }
}
