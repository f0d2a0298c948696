//! The ciphers, MACs and key derivation RFC 6030 §6 uses: AES-CBC with an HMAC over
//! IV ‖ ciphertext, AES key wrap (RFC 3394 and its padded form RFC 5649), and PBKDF2.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use hmac::{Hmac, Mac};

use crate::secret::Secret;

/// A value cipher named by its XML Encryption URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    AesCbc(usize),
    /// RFC 3394 key wrap; RFC 5649 padding is recognised by its integrity value.
    AesKw(usize),
}

impl Cipher {
    pub fn from_uri(uri: &str) -> Option<Self> {
        let name = uri.rsplit('#').next().unwrap_or(uri).to_ascii_lowercase();
        Some(match name.as_str() {
            "aes128-cbc" => Cipher::AesCbc(16),
            "aes192-cbc" => Cipher::AesCbc(24),
            "aes256-cbc" => Cipher::AesCbc(32),
            "kw-aes128" | "kw-aes-128-pad" | "kw-aes128-pad" => Cipher::AesKw(16),
            "kw-aes192" | "kw-aes-192-pad" | "kw-aes192-pad" => Cipher::AesKw(24),
            "kw-aes256" | "kw-aes-256-pad" | "kw-aes256-pad" => Cipher::AesKw(32),
            _ => return None,
        })
    }

    pub fn key_len(self) -> usize {
        match self {
            Cipher::AesCbc(n) | Cipher::AesKw(n) => n,
        }
    }

    /// CBC has no integrity of its own: RFC 6030 §6.1.1 requires a MAC with it.
    pub fn needs_mac(self) -> bool {
        matches!(self, Cipher::AesCbc(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl MacAlg {
    pub fn from_uri(uri: &str) -> Option<Self> {
        let name = uri.rsplit('#').next().unwrap_or(uri).to_ascii_lowercase();
        Some(match name.replace("hmac-sha-", "hmac-sha").as_str() {
            "hmac-sha1" => MacAlg::Sha1,
            "hmac-sha224" => MacAlg::Sha224,
            "hmac-sha256" => MacAlg::Sha256,
            "hmac-sha384" => MacAlg::Sha384,
            "hmac-sha512" => MacAlg::Sha512,
            _ => return None,
        })
    }
}

/// Verifies `tag` = HMAC(key, data) in constant time (`verify_slice`).
pub fn verify_mac(alg: MacAlg, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    macro_rules! check {
        ($h:ty) => {{
            let mut m = <Hmac<$h>>::new_from_slice(key).expect("any key length");
            m.update(data);
            m.verify_slice(tag).is_ok()
        }};
    }
    match alg {
        MacAlg::Sha1 => check!(sha1::Sha1),
        MacAlg::Sha224 => check!(sha2::Sha224),
        MacAlg::Sha256 => check!(sha2::Sha256),
        MacAlg::Sha384 => check!(sha2::Sha384),
        MacAlg::Sha512 => check!(sha2::Sha512),
    }
}

/// Decrypts IV ‖ ciphertext. The caller has checked the key length against the cipher and,
/// for CBC, the MAC first: a padding error must never be the first thing an altered file
/// meets.
pub fn decrypt(cipher: Cipher, key: &[u8], data: &[u8]) -> Result<Secret, String> {
    if key.len() != cipher.key_len() {
        return Err(format!(
            "the key is {} bytes; this cipher needs {}",
            key.len(),
            cipher.key_len()
        ));
    }
    match cipher {
        Cipher::AesCbc(n) => {
            if data.len() < 32 || !data.len().is_multiple_of(16) {
                return Err("encrypted value has a bad length".into());
            }
            let (iv, ct) = data.split_at(16);
            let mut buf = ct.to_vec();
            let plain = match n {
                16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
                    .map_err(|e| e.to_string())?
                    .decrypt_padded_mut::<Pkcs7>(&mut buf)
                    .map(<[u8]>::to_vec),
                24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
                    .map_err(|e| e.to_string())?
                    .decrypt_padded_mut::<Pkcs7>(&mut buf)
                    .map(<[u8]>::to_vec),
                _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
                    .map_err(|e| e.to_string())?
                    .decrypt_padded_mut::<Pkcs7>(&mut buf)
                    .map(<[u8]>::to_vec),
            };
            zeroize::Zeroize::zeroize(&mut buf);
            plain
                .map(Secret::new)
                .map_err(|_| "decryption failed (wrong key?)".into())
        }
        Cipher::AesKw(n) => {
            // RFC 3394 for multiples of 8 bytes, RFC 5649 (with its own integrity value) for
            // the rest; python-pskc writes either under the kw-aes URIs. Both check integrity,
            // so trying one then the other cannot accept a wrong key.
            macro_rules! unwrap {
                ($kek:ty) => {{
                    let kek = <$kek>::try_from(key).map_err(|e| e.to_string())?;
                    kek.unwrap_vec(data)
                        .or_else(|_| kek.unwrap_with_padding_vec(data))
                }};
            }
            let plain = match n {
                16 => unwrap!(aes_kw::KekAes128),
                24 => unwrap!(aes_kw::KekAes192),
                _ => unwrap!(aes_kw::KekAes256),
            };
            plain
                .map(Secret::new)
                .map_err(|_| "key unwrap failed (wrong key, or the value was altered)".into())
        }
    }
}

/// PBKDF2 with the PRF the file names (HMAC-SHA1 by default, as RFC 8018 says).
pub fn pbkdf2(prf: MacAlg, passphrase: &[u8], salt: &[u8], iterations: u32, len: usize) -> Secret {
    let mut out = vec![0u8; len];
    match prf {
        MacAlg::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passphrase, salt, iterations, &mut out),
        MacAlg::Sha224 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha224>(passphrase, salt, iterations, &mut out)
        }
        MacAlg::Sha256 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase, salt, iterations, &mut out)
        }
        MacAlg::Sha384 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha384>(passphrase, salt, iterations, &mut out)
        }
        MacAlg::Sha512 => {
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(passphrase, salt, iterations, &mut out)
        }
    }
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3394_4_1_wrap_128_with_128() {
        let kek = hex::decode("000102030405060708090A0B0C0D0E0F").unwrap();
        let ct = hex::decode("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5").unwrap();
        let key = decrypt(Cipher::AesKw(16), &kek, &ct).unwrap();
        assert_eq!(
            hex::encode_upper(key.expose()),
            "00112233445566778899AABBCCDDEEFF"
        );
        let mut bad = ct.clone();
        bad[3] ^= 1;
        assert!(decrypt(Cipher::AesKw(16), &kek, &bad).is_err());
    }

    #[test]
    fn rfc5649_6_wrap_with_padding() {
        let kek = hex::decode("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8").unwrap();
        let ct = hex::decode("afbeb0f07dfbf5419200f2ccb50bb24f").unwrap();
        let key = decrypt(Cipher::AesKw(24), &kek, &ct).unwrap();
        assert_eq!(hex::encode(key.expose()), "466f7250617369");
    }

    #[test]
    fn rfc6070_pbkdf2_sha1() {
        let k = pbkdf2(MacAlg::Sha1, b"password", b"salt", 4096, 20);
        assert_eq!(
            hex::encode(k.expose()),
            "4b007901b765489abead49d926f721d065a429c1"
        );
    }

    #[test]
    fn uris() {
        assert_eq!(
            Cipher::from_uri("http://www.w3.org/2001/04/xmlenc#aes256-cbc"),
            Some(Cipher::AesCbc(32))
        );
        assert_eq!(
            Cipher::from_uri("http://www.w3.org/2009/xmlenc11#kw-aes-128-pad"),
            Some(Cipher::AesKw(16))
        );
        assert_eq!(
            Cipher::from_uri("http://www.w3.org/2001/04/xmlenc#tripledes-cbc"),
            None
        );
        assert_eq!(
            MacAlg::from_uri("http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"),
            Some(MacAlg::Sha256)
        );
    }
}
