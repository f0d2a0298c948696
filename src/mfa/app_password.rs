//! App passwords for clients that cannot do a second factor: 100 random bits shown once,
//! stored as a keyed hash (HMAC-SHA256 with a key derived from the store's key file, like
//! the SMS codes'; `hmac-sha256$HEX`). Users may type them with or without the dashes and
//! in any case; the hash covers the normalised form.
//!
//! Why keyed and not argon2 (which releases before this one stored, and which still
//! verify): a login on an app-password client is compared with every app password of the
//! user, and with argon2 each took milliseconds, so a holder of three answered three times
//! slower than a name nobody has, telling which users exist. A keyed hash costs the same
//! microseconds for any number. With ~99 random bits there is nothing for a slow hash to
//! protect: it is what makes *chosen* passwords expensive to guess.

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

/// The prefix of a keyed hash (the rest: 64 hex digits).
const KEYED: &str = "hmac-sha256$";

/// HMAC-SHA256 of the normalised password, under a key of its own derived from the store
/// key (`store_key`: [`crate::store::Store::sms_code_key`], itself derived from the key
/// file; a further label keeps the two uses apart).
fn tag(store_key: &[u8], typed: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    type H = Hmac<sha2::Sha256>;
    let mut derive = <H as Mac>::new_from_slice(store_key).expect("HMAC takes any key");
    derive.update(b"radmfa: app password key v1");
    let key: zeroize::Zeroizing<[u8; 32]> =
        zeroize::Zeroizing::new(derive.finalize().into_bytes().into());
    let mut mac = <H as Mac>::new_from_slice(&key[..]).expect("HMAC takes any key");
    mac.update(normalise(typed).as_bytes());
    mac.finalize().into_bytes().into()
}

/// What is stored for a new app password.
pub fn hash_keyed(store_key: &[u8], password: &Secret) -> String {
    let typed = password.expose_str().unwrap_or_default();
    format!("{KEYED}{}", hex::encode(tag(store_key, typed)))
}

/// Which of `stored` (keyed hashes, or argon2 PHC strings from earlier releases) `typed`
/// is, if any. Takes the same time whichever matches and however many keyed hashes there
/// are: every one is compared (constant time), and exactly one argon2 comparison is made
/// when none is argon2 (against a never-matching hash), so a holder of keyed app passwords
/// costs what a user with none does, and what a holder of one from before did. Blocking:
/// milliseconds of CPU.
pub fn find(store_key: &[u8], typed: &str, stored: &[&str]) -> Option<usize> {
    use subtle::ConstantTimeEq;
    let mine = tag(store_key, typed);
    let mut found = None;
    let mut argon2 = 0;
    for (i, h) in stored.iter().enumerate() {
        let hit = match h.strip_prefix(KEYED) {
            Some(hex_tag) => {
                hex::decode(hex_tag).is_ok_and(|t| bool::from(t.as_slice().ct_eq(&mine[..])))
            }
            None => {
                argon2 += 1;
                verify(typed, h)
            }
        };
        if hit && found.is_none() {
            found = Some(i);
        }
    }
    if argon2 == 0 {
        verify_against_none(typed);
    }
    found
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

    #[test]
    fn keyed_hashes_find_the_typed_one_under_their_key_only() {
        let key = [7u8; 32];
        let (a, b) = (generate(), generate());
        let (ha, hb) = (hash_keyed(&key, &a), hash_keyed(&key, &b));
        assert!(
            ha.starts_with("hmac-sha256$") && ha.len() == 12 + 64,
            "{ha}"
        );
        assert!(!ha.contains(&normalise(a.expose_str().unwrap())));
        let legacy = hash(&generate()).unwrap();
        let stored = [legacy.as_str(), ha.as_str(), hb.as_str()];
        let typed_b = b.expose_str().unwrap().to_uppercase().replace('-', " ");
        assert_eq!(find(&key, &typed_b, &stored), Some(2));
        assert_eq!(find(&key, a.expose_str().unwrap(), &stored), Some(1));
        assert_eq!(find(&key, "not-it", &stored), None);
        assert_eq!(find(&[8u8; 32], a.expose_str().unwrap(), &stored), None);
        assert_eq!(find(&key, "x", &[]), None);
        // An argon2 hash from an earlier release still verifies.
        let old = generate();
        let old_hash = hash(&old).unwrap();
        assert_eq!(
            find(&key, old.expose_str().unwrap(), &[&ha, &old_hash]),
            Some(1)
        );
    }
}
