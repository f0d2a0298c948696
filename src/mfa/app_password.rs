//! App passwords for clients that cannot do a second factor: 100 random bits shown once,
//! stored as a keyed hash (HMAC-SHA256 with a key derived from the store's key file, like
//! the SMS codes'; `hmac-sha256-u$HEX`) of the user's name and the password. Users may type
//! them with or without the dashes and in any case; the hash covers the normalised form.
//!
//! Why the name is in it: an app password stands in for both factors, and a seed is sealed
//! to its serial so that whoever can write to the database, without the key file, cannot
//! move it; a hash of the password alone (`hmac-sha256$HEX`, the form before this one) could
//! be copied to another user's row and let its holder in as that user, and an argon2id hash
//! (the form before that, which needs no key) could be made up for any user (red team).
//! Those two forms verify only with `[store] legacy_app_passwords = true`.
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

/// The prefix of a keyed hash of the password alone, from before they were bound to their
/// user (the rest: 64 hex digits).
const KEYED: &str = "hmac-sha256$";
/// The prefix of a keyed hash of the user's name and the password (the rest: 64 hex digits).
const BOUND: &str = "hmac-sha256-u$";

/// Which form a stored app password is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Bound to its user ([`BOUND`]): what `add` stores.
    Bound,
    /// A keyed hash of the password alone, or an argon2id PHC string: verifies only with
    /// `[store] legacy_app_passwords`, since anyone who can write to the database can copy
    /// the first to another user and make the second up.
    Legacy,
}

/// The form of the stored hash `h`.
pub fn form(h: &str) -> Form {
    if h.starts_with(BOUND) {
        Form::Bound
    } else {
        Form::Legacy
    }
}

/// HMAC-SHA256 of the normalised password, under a key of its own derived from the store
/// key (`store_key`: [`crate::store::Store::sms_code_key`], itself derived from the key
/// file; a further label keeps the two uses apart).
fn tag(store_key: &[u8], typed: &str) -> [u8; 32] {
    keyed(
        store_key,
        b"radmfa: app password key v1",
        &[normalise(typed).as_bytes()],
    )
}

/// HMAC-SHA256 of the user's key (its length first, so no name and password pair reads as
/// another) and the normalised password, under a key of its own derived from the store key.
fn bound_tag(store_key: &[u8], user: &str, typed: &str) -> [u8; 32] {
    let len = u32::try_from(user.len()).unwrap_or(u32::MAX).to_be_bytes();
    keyed(
        store_key,
        b"radmfa: app password key v2 (bound to the user)",
        &[&len, user.as_bytes(), normalise(typed).as_bytes()],
    )
}

/// HMAC-SHA256 of `parts` under a key derived from `store_key` with `label`.
fn keyed(store_key: &[u8], label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    type H = Hmac<sha2::Sha256>;
    let mut derive = <H as Mac>::new_from_slice(store_key).expect("HMAC takes any key");
    derive.update(label);
    let key: zeroize::Zeroizing<[u8; 32]> =
        zeroize::Zeroizing::new(derive.finalize().into_bytes().into());
    let mut mac = <H as Mac>::new_from_slice(&key[..]).expect("HMAC takes any key");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// What is stored for a new app password of `user` (the user's key, as the store has it).
pub fn hash_keyed(store_key: &[u8], user: &str, password: &Secret) -> String {
    let typed = password.expose_str().unwrap_or_default();
    format!("{BOUND}{}", hex::encode(bound_tag(store_key, user, typed)))
}

/// Which of `stored`, `user`'s app passwords (bound or legacy hashes, see [`Form`]),
/// `typed` is, if any; the caller decides whether a legacy one may be used. Takes the same
/// time whichever matches and however many keyed hashes there are: every one is compared
/// (constant time), and exactly one argon2 comparison is made when none is argon2 (against
/// a never-matching hash), so a holder of keyed app passwords costs what a user with none
/// does, and what a holder of one from before did. Blocking: milliseconds of CPU.
pub fn find(store_key: &[u8], user: &str, typed: &str, stored: &[&str]) -> Option<usize> {
    use subtle::ConstantTimeEq;
    let unbound = tag(store_key, typed);
    let bound = bound_tag(store_key, user, typed);
    let same = |hex_tag: &str, mine: &[u8; 32]| {
        hex::decode(hex_tag).is_ok_and(|t| bool::from(t.as_slice().ct_eq(&mine[..])))
    };
    let mut found = None;
    let mut argon2 = 0;
    for (i, h) in stored.iter().enumerate() {
        let hit = if let Some(hex_tag) = h.strip_prefix(BOUND) {
            same(hex_tag, &bound)
        } else if let Some(hex_tag) = h.strip_prefix(KEYED) {
            same(hex_tag, &unbound)
        } else {
            argon2 += 1;
            verify(typed, h)
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
        let (ha, hb) = (hash_keyed(&key, "alice", &a), hash_keyed(&key, "alice", &b));
        assert!(
            ha.starts_with("hmac-sha256-u$") && ha.len() == 14 + 64,
            "{ha}"
        );
        assert_eq!(form(&ha), Form::Bound);
        assert!(!ha.contains(&normalise(a.expose_str().unwrap())));
        let legacy = hash(&generate()).unwrap();
        let stored = [legacy.as_str(), ha.as_str(), hb.as_str()];
        let typed_b = b.expose_str().unwrap().to_uppercase().replace('-', " ");
        assert_eq!(find(&key, "alice", &typed_b, &stored), Some(2));
        assert_eq!(
            find(&key, "alice", a.expose_str().unwrap(), &stored),
            Some(1)
        );
        assert_eq!(find(&key, "alice", "not-it", &stored), None);
        assert_eq!(
            find(&[8u8; 32], "alice", a.expose_str().unwrap(), &stored),
            None
        );
        assert_eq!(find(&key, "alice", "x", &[]), None);
        // An argon2 hash from an earlier release still verifies (its use is the caller's
        // to allow), as does a keyed hash of the password alone.
        let old = generate();
        let old_hash = hash(&old).unwrap();
        assert_eq!(form(&old_hash), Form::Legacy);
        assert_eq!(
            find(&key, "alice", old.expose_str().unwrap(), &[&ha, &old_hash]),
            Some(1)
        );
        let unbound = format!(
            "{KEYED}{}",
            hex::encode(tag(&key, old.expose_str().unwrap()))
        );
        assert_eq!(form(&unbound), Form::Legacy);
        assert_eq!(
            find(&key, "bob", old.expose_str().unwrap(), &[&ha, &unbound]),
            Some(1)
        );
    }

    /// A bound hash copied into another user's row (by whoever can write to the database
    /// but has no key file) does not let its password in as that user.
    #[test]
    fn a_bound_hash_is_no_other_users() {
        let key = [7u8; 32];
        let pw = generate();
        let typed = pw.expose_str().unwrap();
        let h = hash_keyed(&key, "bob", &pw);
        assert_eq!(find(&key, "bob", typed, &[&h]), Some(0));
        assert_eq!(find(&key, "alice", typed, &[&h]), None);
        // The name's length is hashed first: "ab" + "c…" is not "a" + "bc…".
        let joined = hash_keyed(&key, "a", &Secret::from(format!("b{typed}")));
        assert_eq!(find(&key, "ab", typed, &[&joined]), None);
    }
}
