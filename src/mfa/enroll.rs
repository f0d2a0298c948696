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

/// The URI as a QR code in Unicode half blocks, with a quiet zone, so phones scan it straight
/// off a terminal: a full block is two dark modules, as ink on paper. That is right on a
/// light background only; `colours` (for a terminal) also fixes each line's colours, black on
/// white, so it is right on a dark-themed terminal too. Drawn the other way round (blocks
/// for light modules), it showed inverted on a light theme, and many scanners (zbar, some
/// phones' cameras) read no code at all there.
pub fn qr_text(uri: &str, colours: bool) -> Result<String, String> {
    let code = QrCode::new(uri.as_bytes()).map_err(|e| e.to_string())?;
    let plain = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Dark)
        .light_color(Dense1x2::Light)
        .quiet_zone(true)
        .build();
    if !colours {
        return Ok(plain);
    }
    // Black on bright white, the quiet zone included, reset at each line's end so nothing
    // bleeds into the next line or the prompt. The 16 basic colours: every terminal has
    // them, where 256-colour codes are misread by some.
    Ok(plain
        .lines()
        .map(|line| format!("{BLACK_ON_WHITE}{line}{RESET}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

const BLACK_ON_WHITE: &str = "\x1b[30;107m";
const RESET: &str = "\x1b[0m";

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
        assert!(qr_text(&uri, false).unwrap().lines().count() > 10);
    }

    /// A full block is two dark modules: the top row of the top-left finder pattern (seven
    /// dark modules) over the row below it (dark, five light, dark), after the four-module
    /// quiet zone (two lines, and four columns).
    #[test]
    fn full_blocks_are_dark_modules() {
        let qr = qr_text("otpauth://totp/x", false).unwrap();
        let lines: Vec<&str> = qr.lines().collect();
        assert!(lines[..2].iter().all(|l| l.trim().is_empty()), "{qr}");
        let finder: String = lines[2].chars().skip(4).take(7).collect();
        assert_eq!(finder, "█▀▀▀▀▀█", "{qr}");
        assert!(!qr.contains('\x1b'), "escapes only when asked: {qr:?}");
    }

    /// With colours, every line, quiet zone and all, is black on white and ends reset; the
    /// modules are drawn as without.
    #[test]
    fn coloured_lines_are_black_on_white_and_reset() {
        let plain = qr_text("otpauth://totp/x", false).unwrap();
        let coloured = qr_text("otpauth://totp/x", true).unwrap();
        assert_eq!(coloured.lines().count(), plain.lines().count());
        for (c, p) in coloured.lines().zip(plain.lines()) {
            assert_eq!(c, format!("\x1b[30;107m{p}\x1b[0m"));
        }
    }

    #[test]
    fn seeds_have_the_recommended_length() {
        assert_eq!(new_seed(OtpAlgorithm::Sha1).len(), 20);
        assert_eq!(new_seed(OtpAlgorithm::Sha512).len(), 64);
    }
}
