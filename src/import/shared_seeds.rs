//! One seed under two serials: whoever holds either token can compute the other's codes, so
//! the two owners can log in as each other. A vendor file imported twice under different
//! serials, a seed column pasted into two rows, or a demo file with the RFC test key do it.
//! Such rows are refused, naming the other serial (and where it is), as duplicate serials
//! are: which of them is right is not known.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::{ImportedToken, Problem};
use crate::admin::printable;
use crate::mfa::hotp::hmac_key_form;
use crate::store::{OtpAlgorithm, TokenRecord};

/// Where a seed was seen: a serial, and the row of the file or "the store".
struct Holder {
    serial: String,
    place: String,
}

/// Takes out of `ready` every token whose seed another serial has, in the file or in the
/// store (`stored`, by serial, seeds opened). A token replacing its own serial's stored
/// seed (`--replace`) is not a second holder of it. But a serial the file replaces still
/// holds its old seed for every other row: a seed moved to another serial (a "corrected"
/// vendor file with the serials shifted or swapped) would leave behind its HOTP counter,
/// its used TOTP steps and its disabled flag, which live with the serial, so used codes
/// and a token disabled as lost would work again under the new one.
pub fn refuse_shared_seeds(
    ready: &mut Vec<ImportedToken>,
    stored: &HashMap<String, TokenRecord>,
) -> Vec<Problem> {
    // A digest, so that the seeds are not copied into the map (they stay in their Secret),
    // of the key HMAC makes of the seed: seeds padded with zero bytes, or a long seed and
    // its hash, give the same codes (see `hmac_key_form`).
    let digest = |alg: OtpAlgorithm, seed: &[u8]| -> [u8; 32] {
        Sha256::digest(hmac_key_form(alg, seed).expose()).into()
    };
    let mut holders: HashMap<[u8; 32], Vec<Holder>> = HashMap::new();
    let replacing: HashSet<&str> = ready.iter().map(|t| t.token.serial.as_str()).collect();
    for r in stored.values().filter(|r| !r.token.secret.is_empty()) {
        let place = if replacing.contains(r.token.serial.as_str()) {
            "in the store, which this file replaces (its used codes, counter and disabled \
             state stay with that serial and would not follow the seed; if that serial was \
             wrong, delete it first: `radmfa token delete SERIAL --force`)"
        } else {
            "in the store"
        };
        holders
            .entry(digest(r.token.algorithm, r.token.secret.expose()))
            .or_default()
            .push(Holder {
                serial: r.token.serial.clone(),
                place: place.into(),
            });
    }
    for t in ready.iter() {
        holders
            .entry(digest(t.token.algorithm, t.token.secret.expose()))
            .or_default()
            .push(Holder {
                serial: t.token.serial.clone(),
                place: format!("at {}", t.origin),
            });
    }
    let mut problems = Vec::new();
    ready.retain(|t| {
        let Some(others) = holders.get(&digest(t.token.algorithm, t.token.secret.expose())) else {
            return true;
        };
        let Some(other) = others.iter().find(|h| h.serial != t.token.serial) else {
            return true;
        };
        problems.push(Problem {
            origin: t.origin.clone(),
            message: format!(
                "serial {} has the same seed as serial {} {}: whoever holds one token could \
                 log in as the other's owner. A seed belongs to one token; check which \
                 serial is right",
                printable(&t.token.serial),
                printable(&other.serial),
                other.place
            ),
        });
        false
    });
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::{NewToken, OtpAlgorithm, Token, TokenExtra, TokenKind};

    fn imported(serial: &str, seed: &[u8], line: u32) -> ImportedToken {
        ImportedToken {
            origin: format!("line {line}"),
            token: NewToken {
                serial: serial.into(),
                user: None,
                kind: TokenKind::Totp,
                algorithm: OtpAlgorithm::Sha1,
                digits: 6,
                period: 30,
                counter: 0,
                secret: Secret::new(seed.to_vec()),
            },
            extra: TokenExtra::default(),
            owner_dn: None,
        }
    }

    fn stored(serial: &str, seed: &[u8]) -> (String, TokenRecord) {
        let token = Token {
            id: 1,
            serial: serial.into(),
            user: Some("alice".into()),
            kind: TokenKind::Totp,
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            counter: 0,
            last_step: None,
            enabled: true,
            created_at: 0,
            secret: Secret::new(seed.to_vec()),
        };
        (
            serial.into(),
            TokenRecord {
                token,
                extra: TokenExtra::default(),
            },
        )
    }

    #[test]
    fn a_seed_under_two_serials_is_refused_wherever_the_other_is() {
        let store: HashMap<_, _> = [stored("OLD1", b"seed-in-store"), stored("SAME", b"kept")]
            .into_iter()
            .collect();
        let mut ready = vec![
            imported("A1", b"seed-twice", 1),
            imported("A2", b"seed-twice", 2),
            imported("B1", b"seed-in-store", 3),
            imported("C1", b"fresh", 4),
            // Replacing its own serial with the seed it has: not a second holder.
            imported("SAME", b"kept", 5),
        ];
        let problems = refuse_shared_seeds(&mut ready, &store);
        let kept: Vec<&str> = ready.iter().map(|t| t.token.serial.as_str()).collect();
        assert_eq!(kept, ["C1", "SAME"]);
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(shown[0].starts_with("line 1: serial A1 has the same seed as serial A2 at line 2"));
        assert!(shown[1].starts_with("line 2: serial A2 has the same seed as serial A1 at line 1"));
        assert!(
            shown[2].starts_with("line 3: serial B1 has the same seed as serial OLD1 in the store")
        );
        assert_eq!(shown.len(), 3);
        // No seed in any message.
        assert!(shown.iter().all(|m| !m.contains("seed-")), "{shown:?}");
    }

    /// Seeds HMAC takes as one key (zero bytes appended; a seed longer than the hash's
    /// block and its digest) give the same codes: they are one seed under two serials.
    #[test]
    fn seeds_that_give_the_same_codes_are_one_seed() {
        use sha2::Digest;
        let long: Vec<u8> = (1..=80u8).collect();
        let digest = sha1::Sha1::digest(&long).to_vec();
        let store: HashMap<_, _> = [stored("OLD1", b"seed-in-store")].into_iter().collect();
        let mut ready = vec![
            imported("PAD1", b"seed-in-store\0\0\0", 1),
            imported("LONG1", &long, 2),
            imported("LONG2", &digest, 3),
            imported("C1", b"\0seed-in-store", 4),
        ];
        let problems = refuse_shared_seeds(&mut ready, &store);
        let kept: Vec<&str> = ready.iter().map(|t| t.token.serial.as_str()).collect();
        assert_eq!(kept, ["C1"], "{problems:?}");
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(shown[0].starts_with("line 1: serial PAD1 has the same seed as serial OLD1"));
        assert!(shown[1].starts_with("line 2: serial LONG1 has the same seed as serial LONG2"));
    }

    /// A replacement that is refused itself leaves its old seed in the store: a row giving
    /// that seed to a new serial is refused too (with --skip-invalid it was kept).
    #[test]
    fn a_refused_replacement_keeps_its_old_seed() {
        let store: HashMap<_, _> = [stored("OLD1", b"moving"), stored("OTHER", b"z")]
            .into_iter()
            .collect();
        let mut ready = vec![imported("OLD1", b"z", 1), imported("NEW1", b"moving", 2)];
        let problems = refuse_shared_seeds(&mut ready, &store);
        assert!(ready.is_empty(), "kept: {:?}", ready.len());
        assert!(problems[1]
            .to_string()
            .starts_with("line 2: serial NEW1 has the same seed as serial OLD1 in the store"));
    }

    /// The store's old seed for a serial the file replaces does not move to another
    /// serial: its counter, used steps and disabled flag stay with the old serial, so used
    /// codes (and a token disabled as lost) would work again under the new one. It was
    /// taken, and a swap of two serials' seeds too.
    #[test]
    fn a_replaced_seed_does_not_move_to_another_serial() {
        let store: HashMap<_, _> = [stored("OLD1", b"moving"), stored("SWB", b"b-seed")]
            .into_iter()
            .collect();
        let mut ready = vec![
            imported("OLD1", b"new-seed", 1),
            imported("NEW1", b"moving", 2),
        ];
        let problems = refuse_shared_seeds(&mut ready, &store);
        let kept: Vec<&str> = ready.iter().map(|t| t.token.serial.as_str()).collect();
        assert_eq!(kept, ["OLD1"], "{problems:?}");
        let shown = problems[0].to_string();
        assert!(
            shown.starts_with("line 2: serial NEW1 has the same seed as serial OLD1 in the store")
                && shown.contains("which this file replaces")
                && shown.contains("token delete"),
            "{shown}"
        );
        let mut swap = vec![
            imported("OLD1", b"b-seed", 1),
            imported("SWB", b"moving", 2),
        ];
        let problems = refuse_shared_seeds(&mut swap, &store);
        assert!(swap.is_empty(), "{problems:?}");
    }
}
