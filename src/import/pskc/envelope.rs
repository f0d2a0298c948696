//! The container-level crypto of a PSKC file: which key decrypts it (pre-shared or derived
//! from a passphrase with PBKDF2), the MAC key, and reading one `PlainValue` or
//! `EncryptedValue` with its `ValueMAC` checked before anything is decrypted.

use roxmltree::Node;

use super::crypto::{self, Cipher, MacAlg};
use super::xml::{child, path, text};
use crate::import::{Decryption, ImportError};
use crate::secret::Secret;

/// A MACKey read from the file must not be one an altered file could carry. CBC has no
/// integrity of its own: whoever alters the file and knows the plaintext of some of its
/// blocks (padding blocks, a zero Counter) can make a MACKey decrypt to bytes of their
/// choosing and then MAC values of their own under it. One block gives any key of 1 to 15
/// bytes outright; longer ones end in a block the forger cannot choose, only try pairs of
/// known blocks for, until it ends in valid padding: n bytes of padding take about 2^(8n)
/// pairs, and N known blocks (a bulk file whose Counter or TimeInterval values are
/// encrypted) give N² pairs, so 4 bytes fall to some 65,000 of them. So keys shorter than 16
/// bytes, or ending in fewer than 8 bytes of padding (2^64 pairs), are refused. The usual
/// ones pass: the MAC's hash length, which python-pskc uses (20 bytes for HMAC-SHA1, 32,
/// 48, 64), except SHA-224's 28 (see `check_sha224_mac_key`). A wrong key or passphrase decrypts it to such a length about once in 256 (its
/// padding check passes by chance): the message names both causes.
pub(super) fn check_mac_key_length(len: usize) -> Result<(), ImportError> {
    let padding = 16 - len % 16;
    if len >= 16 && padding >= 8 {
        return Ok(());
    }
    Err(ImportError::WrongKey(format!(
        "the MAC key decrypts to {len} bytes, which a file altered to forge one could hold (a \
         key shorter than 16 bytes, or of 9 to 15 bytes past a multiple of 16): this key does \
         not fit the file, or the file was altered"
    )))
}

/// python-pskc makes an HMAC-SHA224 MAC key 28 bytes, the hash's length: 4 bytes of
/// padding, which `check_mac_key_length` refuses (a forger finds a key of that length in
/// some 2^32 pairs of known blocks). Named as what it is: with the right key, "wrong key or
/// altered" sent people looking for another key. A wrong key decrypts to exactly 28 bytes
/// about once in 2^32.
fn check_sha224_mac_key(alg: MacAlg, len: usize) -> Result<(), ImportError> {
    if alg != MacAlg::Sha224 || len != 28 {
        return Ok(());
    }
    Err(ImportError::Unsupported(
        "the MAC key is 28 bytes, HMAC-SHA224's length (as python-pskc writes an HMAC-SHA224 \
         file): a CBC-encrypted MAC key of that length ends in only 4 bytes of padding, so a \
         file altered to carry a MAC key of its forger's choosing could not be told from this \
         one; nothing was imported. Ask for the file with an HMAC-SHA256, SHA384, SHA512 or \
         SHA1 MAC"
            .into(),
    ))
}

/// PBKDF2 iteration counts above this are refused: a hostile file must not make the import
/// spin for minutes. Real files use 1,000 (RFC 6030) to a few hundred thousand.
const MAX_PBKDF2_ITERATIONS: u32 = 5_000_000;

/// What the file needs to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Nothing,
    Key { name: Option<String> },
    Passphrase { name: Option<String> },
}

struct Pbkdf2Params {
    salt: Vec<u8>,
    iterations: u32,
    key_len: Option<usize>,
    prf: MacAlg,
}

pub fn b64(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    data_encoding::BASE64
        .decode(clean.as_bytes())
        .or_else(|_| data_encoding::BASE64_NOPAD.decode(clean.as_bytes()))
        .map_err(|_| "not valid base64".to_string())
}

fn has_encrypted_values(root: Node<'_, '_>) -> bool {
    root.descendants()
        .any(|n| n.is_element() && n.tag_name().name() == "EncryptedValue")
}

fn derived_key<'a, 'i>(root: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    path(root, &["EncryptionKey", "DerivedKey"])
}

pub fn need(root: Node<'_, '_>) -> Result<Need, ImportError> {
    if let Some(ek) = child(root, "EncryptionKey") {
        if ek.descendants().any(|n| n.tag_name().name() == "X509Data") {
            return Err(ImportError::Unsupported(
                "this file is encrypted to a certificate (asymmetric, RFC 6030 §6.3), which \
                 radmfa does not import; ask the vendor for a pre-shared-key or \
                 password-protected file"
                    .into(),
            ));
        }
        if let Some(dk) = derived_key(root) {
            return Ok(Need::Passphrase {
                name: text(dk, &["MasterKeyName"]),
            });
        }
        // Encrypted, whether or not its values still are: a file that names a key but holds
        // only plain values was altered, or is not what it says.
        return Ok(Need::Key {
            name: text(ek, &["KeyName"]),
        });
    } else if has_encrypted_values(root) {
        return Ok(Need::Key { name: None });
    }
    Ok(Need::Nothing)
}

fn pbkdf2_params(dk: Node<'_, '_>) -> Result<Pbkdf2Params, ImportError> {
    let method = child(dk, "KeyDerivationMethod")
        .ok_or_else(|| ImportError::Unsupported("DerivedKey without KeyDerivationMethod".into()))?;
    let alg = method.attribute("Algorithm").unwrap_or("");
    if !alg.to_ascii_lowercase().ends_with("pbkdf2") {
        return Err(ImportError::Unsupported(format!(
            "key derivation {alg:?} is not supported (PBKDF2 is)"
        )));
    }
    let params = child(method, "PBKDF2-params")
        .ok_or_else(|| ImportError::Unsupported("PBKDF2 without PBKDF2-params".into()))?;
    let bad = |what: &str| ImportError::Unsupported(format!("PBKDF2-params: {what}"));
    let salt = text(params, &["Salt", "Specified"])
        .ok_or_else(|| bad("no Salt/Specified"))
        .and_then(|s| b64(&s).map_err(|e| bad(&format!("Salt {e}"))))?;
    let iterations: u32 = text(params, &["IterationCount"])
        .and_then(|s| s.parse().ok())
        .filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))
        .ok_or_else(|| {
            bad(&format!(
                "IterationCount missing or above {MAX_PBKDF2_ITERATIONS}"
            ))
        })?;
    let key_len = match text(params, &["KeyLength"]) {
        Some(s) => Some(
            s.parse::<usize>()
                .ok()
                .filter(|n| [16, 24, 32].contains(n))
                .ok_or_else(|| bad("KeyLength must be 16, 24 or 32"))?,
        ),
        None => None,
    };
    // The URI belongs in the Algorithm attribute (XML Encryption 1.1); python-pskc writes
    // it as the element's text. Read as absent, that was HMAC-SHA1 and the right
    // passphrase failed as a wrong one.
    let prf = match child(params, "PRF") {
        None => MacAlg::Sha1,
        Some(p) => {
            let uri = match (p.attribute("Algorithm").map(str::trim), text(p, &[])) {
                (Some(a), Some(t)) if a != t => {
                    return Err(bad("PRF has an Algorithm and a different text"))
                }
                (Some(uri), _) => Some(uri.to_string()),
                (None, uri) => uri,
            };
            match uri {
                // RFC 6030 Figure 7's `<PRF/>`: PKCS #5's default.
                None => MacAlg::Sha1,
                Some(uri) => MacAlg::from_uri(&uri).ok_or_else(|| bad(&format!("PRF {uri:?}")))?,
            }
        }
    };
    Ok(Pbkdf2Params {
        salt,
        iterations,
        key_len,
        prf,
    })
}

/// The file's decryption state once the key is known.
pub struct Envelope {
    key: Option<Secret>,
    mac: Option<(MacAlg, Secret)>,
}

/// The cipher the file's values use (for the PBKDF2 key length when KeyLength is absent).
fn first_cipher(root: Node<'_, '_>) -> Option<Cipher> {
    root.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "EncryptionMethod")
        .and_then(|n| n.attribute("Algorithm"))
        .and_then(Cipher::from_uri)
}

impl Envelope {
    pub fn open(root: Node<'_, '_>, decryption: &Decryption) -> Result<Envelope, ImportError> {
        let key =
            match (need(root)?, decryption) {
                (Need::Nothing, _) => None,
                (Need::Key { .. }, Decryption::Key(k)) => Some(k.clone()),
                (Need::Passphrase { .. }, Decryption::Key(k)) => Some(k.clone()),
                (Need::Passphrase { .. }, Decryption::Passphrase(p)) => {
                    let dk = derived_key(root).expect("need() saw it");
                    let params = pbkdf2_params(dk)?;
                    let len = params
                        .key_len
                        .or_else(|| first_cipher(root).map(Cipher::key_len))
                        .unwrap_or(16);
                    Some(crypto::pbkdf2(
                        params.prf,
                        p.expose(),
                        &params.salt,
                        params.iterations,
                        len,
                    ))
                }
                (Need::Key { .. }, Decryption::Passphrase(_)) => return Err(ImportError::BadKey(
                    "this file uses a pre-shared key, not a passphrase: give --key or --key-file"
                        .into(),
                )),
                (Need::Key { name }, Decryption::None) => {
                    return Err(ImportError::KeyNeeded(format!(
                        "give its pre-shared key{} with --key-file (hex) or --key",
                        name.map(|n| format!(" ({n})")).unwrap_or_default()
                    )))
                }
                (Need::Passphrase { name }, Decryption::None) => {
                    return Err(ImportError::KeyNeeded(format!(
                        "give its passphrase{} with --passphrase-file, or enter it at the prompt",
                        name.map(|n| format!(" ({n})")).unwrap_or_default()
                    )))
                }
            };
        let mut env = Envelope { key, mac: None };
        if let Some(method) = child(root, "MACMethod") {
            let uri = method.attribute("Algorithm").unwrap_or("hmac-sha1");
            let alg = MacAlg::from_uri(uri)
                .ok_or_else(|| ImportError::Unsupported(format!("MAC algorithm {uri:?}")))?;
            let mac_key = match child(method, "MACKey") {
                // No MACKey: the MAC key is the encryption key (as python-pskc reads it).
                None => env.key.clone(),
                Some(mk) => {
                    // A cipher radmfa lacks, or a MACKey without its parts, is the file's
                    // make, not a wrong key: said so, so the admin does not retype a
                    // passphrase that was right.
                    let (cipher, _) = cipher_and_data(mk)
                        .map_err(|e| ImportError::Unsupported(format!("MACKey: {e}")))?;
                    let k = env.decrypt_cipher_value(mk).map_err(|e| {
                        ImportError::WrongKey(format!("cannot decrypt the MAC key ({e})"))
                    })?;
                    // The length rules are for CBC, which has no integrity of its own; an
                    // AES key wrap's unwrap checks its own, so a forger cannot choose the
                    // key, and a safe file was refused for a CBC weakness it does not have.
                    if cipher.needs_mac() {
                        check_sha224_mac_key(alg, k.expose().len())?;
                        check_mac_key_length(k.expose().len())?;
                    }
                    Some(k)
                }
            };
            env.mac = mac_key.map(|k| (alg, k));
        }
        Ok(env)
    }

    /// Decrypts an element holding `EncryptionMethod` + `CipherData/CipherValue` (no MAC).
    fn decrypt_cipher_value(&self, node: Node<'_, '_>) -> Result<Secret, String> {
        let (cipher, data) = cipher_and_data(node)?;
        let key = self.key.as_ref().ok_or("no key")?;
        crypto::decrypt(cipher, key.expose(), &data)
    }

    /// Whether the file's values are encrypted (it came with a key or passphrase).
    pub fn encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// Reads a data element (`Secret`, `Counter`, …): its plain text, or its decrypted bytes
    /// after the `ValueMAC` over IV ‖ ciphertext verified (constant time). Errors start
    /// with the element's name.
    pub fn value(&self, elem: Node<'_, '_>) -> Result<Value, ValueError> {
        let name = elem.tag_name().name();
        self.value_of(elem).map_err(|e| match e {
            ValueError::Crypto(m) => ValueError::Crypto(format!("{name}: {m}")),
            ValueError::Other(m) => ValueError::Other(format!("{name}: {m}")),
        })
    }

    fn value_of(&self, elem: Node<'_, '_>) -> Result<Value, ValueError> {
        let plain = text(elem, &["PlainValue"]);
        let encrypted = child(elem, "EncryptedValue");
        let ev = match (plain, encrypted) {
            (Some(_), Some(_)) => {
                return Err(ValueError::Other(
                    "both PlainValue and EncryptedValue; which one is meant?".into(),
                ))
            }
            (Some(p), None) => return Ok(Value::Plain(p)),
            (None, Some(ev)) => ev,
            (None, None) => {
                return Err(ValueError::Other("no PlainValue or EncryptedValue".into()))
            }
        };
        let (cipher, data) = cipher_and_data(ev).map_err(ValueError::Other)?;
        match (text(elem, &["ValueMAC"]), &self.mac) {
            (Some(tag), Some((alg, mac_key))) => {
                let tag = b64(&tag).map_err(|e| ValueError::Other(format!("ValueMAC {e}")))?;
                if !crypto::verify_mac(*alg, mac_key.expose(), &data, &tag) {
                    return Err(ValueError::Crypto(
                        "ValueMAC does not match: wrong key or passphrase, or the file was altered"
                            .into(),
                    ));
                }
            }
            (Some(_), None) => {
                return Err(ValueError::Other(
                    "ValueMAC but no MACMethod in the file".into(),
                ))
            }
            // RFC 6030 §6.1.1: without an integrity-checking cipher a MAC MUST be present.
            (None, _) if cipher.needs_mac() => {
                return Err(ValueError::Other(
                    "CBC-encrypted value without ValueMAC (RFC 6030 §6.1.1 requires one)".into(),
                ))
            }
            (None, _) => {}
        }
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| ValueError::Other("encrypted value but no key".into()))?;
        crypto::decrypt(cipher, key.expose(), &data)
            .map(Value::Decrypted)
            .map_err(ValueError::Crypto)
    }
}

fn cipher_and_data(node: Node<'_, '_>) -> Result<(Cipher, Vec<u8>), String> {
    let uri = child(node, "EncryptionMethod")
        .and_then(|m| m.attribute("Algorithm"))
        .ok_or("no EncryptionMethod")?;
    let cipher = Cipher::from_uri(uri).ok_or_else(|| {
        format!("encryption {uri:?} is not supported (AES-CBC and AES key wrap are)")
    })?;
    let data = text(node, &["CipherData", "CipherValue"]).ok_or("no CipherValue")?;
    Ok((cipher, b64(&data).map_err(|e| format!("CipherValue {e}"))?))
}

pub enum Value {
    Plain(String),
    Decrypted(Secret),
}

#[derive(Debug)]
pub enum ValueError {
    /// MAC or decryption failure: what a wrong key produces.
    Crypto(String),
    Other(String),
}

impl ValueError {
    pub fn message(self) -> String {
        match self {
            ValueError::Crypto(m) | ValueError::Other(m) => m,
        }
    }
}
