//! TOTP enrollment: a fresh seed, the `otpauth://` URI authenticator apps understand, and a
//! QR code drawn in the terminal.

use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use rand::RngCore;

use crate::secret::Secret;
use crate::store::OtpAlgorithm;

/// A new random seed: 20 bytes for SHA1 (RFC 4226 §4 recommends 160 bits), 32/64 for SHA2.
pub fn new_seed(algorithm: OtpAlgorithm) -> Secret {
    let len = match algorithm {
        OtpAlgorithm::Sha1 => 20,
        OtpAlgorithm::Sha256 => 32,
        OtpAlgorithm::Sha512 => 64,
    };
    let mut seed = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    Secret::new(seed)
}

pub fn base32(seed: &Secret) -> String {
    data_encoding::BASE32_NOPAD.encode(seed.expose())
}

fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Key URI format (as Google Authenticator defines it). Microsoft Authenticator reads the same.
pub fn otpauth_uri(
    issuer: &str,
    user: &str,
    seed: &Secret,
    algorithm: OtpAlgorithm,
    digits: u32,
    period: u32,
) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        escape(issuer),
        escape(user),
        base32(seed),
        escape(issuer),
        algorithm.as_str(),
        digits,
        period
    )
}

/// The URI as a QR code in Unicode half blocks, dark on light, with a quiet zone, so phones
/// scan it straight off a terminal.
pub fn qr_text(uri: &str) -> Result<String, String> {
    let code = QrCode::new(uri.as_bytes()).map_err(|e| e.to_string())?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_has_the_fields_apps_need() {
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let uri = otpauth_uri("radmfa", "alice smith", &seed, OtpAlgorithm::Sha1, 6, 30);
        assert_eq!(
            uri,
            "otpauth://totp/radmfa:alice%20smith?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=radmfa&algorithm=SHA1&digits=6&period=30"
        );
        assert!(qr_text(&uri).unwrap().lines().count() > 10);
    }

    #[test]
    fn seeds_have_the_recommended_length() {
        assert_eq!(new_seed(OtpAlgorithm::Sha1).len(), 20);
        assert_eq!(new_seed(OtpAlgorithm::Sha512).len(), 64);
    }
}
