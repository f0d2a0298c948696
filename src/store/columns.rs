//! Turning stored column values into domain values, the same for every backend: integer
//! ranges, token kind and algorithm text, and opening a sealed seed bound to its serial.
//! The backends differ only in how they read a row.

use super::seal::KEY_CHECK_AAD;
use super::{OtpAlgorithm, Sealer, StoreError, TokenKind};
use crate::secret::Secret;

pub fn to_u32(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {v}")))
}

pub fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {v}")))
}

/// HOTP counters are u64 in the API but a signed 64-bit integer in SQL; values beyond
/// i64::MAX are refused rather than wrapped.
pub fn counter_to_sql(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("HOTP counter out of range: {v}")))
}

/// The text a token kind is stored as.
pub fn kind_str(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Totp => "totp",
        TokenKind::Hotp => "hotp",
    }
}

pub fn token_kind(serial: &str, kind: &str) -> Result<TokenKind, StoreError> {
    match kind {
        "totp" => Ok(TokenKind::Totp),
        "hotp" => Ok(TokenKind::Hotp),
        other => Err(StoreError::Corrupt(format!(
            "token {serial}: unknown kind {other:?}"
        ))),
    }
}

pub fn token_algorithm(serial: &str, algorithm: &str) -> Result<OtpAlgorithm, StoreError> {
    OtpAlgorithm::parse(algorithm).ok_or_else(|| {
        StoreError::Corrupt(format!("token {serial}: unknown algorithm {algorithm:?}"))
    })
}

/// Opens a token's sealed seed (the serial is the AEAD's associated data); a failure names
/// the token. The key-check row's associated data is refused as a serial, so its ciphertext
/// copied onto a token cannot become a seed whose value everyone knows.
pub fn open_seed(sealer: &Sealer, serial: &str, sealed: &[u8]) -> Result<Secret, StoreError> {
    if serial == KEY_CHECK_AAD {
        return Err(StoreError::Decrypt(format!(
            "token {serial}: this serial is reserved and no seed opens under it"
        )));
    }
    sealer.open(sealed, serial.as_bytes()).map_err(|e| match e {
        StoreError::Decrypt(reason) => StoreError::Decrypt(format!("token {serial}: {reason}")),
        other => other,
    })
}

/// [`open_seed`] for the admin reads: a seed that does not open under the right key (the
/// key itself is checked when the store opens) gives an empty seed and the reason, so one
/// damaged row does not stop `token list`, `user show`, imports or the `token delete` that
/// would remove it. Any other error is still an error.
pub fn open_seed_or_reason(
    sealer: &Sealer,
    serial: &str,
    sealed: &[u8],
) -> Result<(Secret, Option<String>), StoreError> {
    match open_seed(sealer, serial, sealed) {
        Ok(secret) => Ok((secret, None)),
        Err(StoreError::Decrypt(reason)) => Ok((Secret::new(Vec::new()), Some(reason))),
        Err(e) => Err(e),
    }
}

/// What a `token import --replace` keeps of the token it overwrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// The HOTP counter never goes back: a lower one would make used codes valid again.
    pub counter: bool,
    /// The TOTP drift radmfa learned stays.
    pub drift: bool,
}

impl Kept {
    /// A new serial, or another seed.
    pub const NOTHING: Kept = Kept {
        counter: false,
        drift: false,
    };
}

/// What replacing the token stored (as `kind`, with the seed `sealed`) by `new` keeps (seeds
/// compared in constant time). The same seed keeps its counter whatever the kinds (a file
/// that got the type wrong, then one that got it right, must not send it back) and its drift
/// if the kind is the same too. A stored seed that does not open (a BROKEN token) may well
/// be this one, since a hardware token's serial rarely gets another seed: its counter stays,
/// at worst a token that needs a resync, and its drift goes.
/// `stored` is the token's stored kind and sealed seed, `None` for a new serial.
pub fn kept_on_replace(
    sealer: &Sealer,
    new: &super::NewToken,
    stored: Option<(String, Vec<u8>)>,
) -> Result<Kept, StoreError> {
    use subtle::ConstantTimeEq;
    let Some((kind, sealed)) = stored else {
        return Ok(Kept::NOTHING);
    };
    let (old, unreadable) = open_seed_or_reason(sealer, &new.serial, &sealed)?;
    if unreadable.is_some() {
        return Ok(Kept {
            counter: true,
            drift: false,
        });
    }
    // Compared as HMAC uses them: a seed padded with zero bytes gives the same codes, and
    // must not pass for a new seed that resets the counter (used codes would work again).
    let key = |seed: &[u8]| crate::mfa::hotp::hmac_key_form(new.algorithm, seed);
    if !bool::from(
        key(old.expose())
            .expose()
            .ct_eq(key(new.secret.expose()).expose()),
    ) {
        return Ok(Kept::NOTHING);
    }
    Ok(Kept {
        counter: true,
        drift: kind == kind_str(new.kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_check_ciphertext_never_opens_as_a_seed() {
        let sealer = Sealer::from_key([7; 32]);
        // What the PostgreSQL store writes into `key_check`; its plaintext is public.
        let key_check = sealer.seal(b"radmfa key check v1", KEY_CHECK_AAD.as_bytes());
        assert!(sealer.open(&key_check, KEY_CHECK_AAD.as_bytes()).is_ok());
        let err = open_seed(&sealer, KEY_CHECK_AAD, &key_check).unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        // Any other serial still opens its own seed.
        let seed = sealer.seal(b"seed", b"SN1");
        assert_eq!(open_seed(&sealer, "SN1", &seed).unwrap().expose(), b"seed");
    }
}
