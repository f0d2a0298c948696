//! Second factors: OATH codes (`otp` for TOTP, `hotp` for RFC 4226 event tokens), enrollment
//! (`enroll`) and the pending-challenge State (`challenge`); SMS codes (`sms`), the approval
//! call's script (`voice`), method choice at a prompt (`method`) and app passwords
//! (`app_password`). Sending them is `crate::delivery`.

pub mod app_password;
pub mod challenge;
pub mod enroll;
pub mod hotp;
pub mod method;
pub mod otp;
pub mod sms;
pub mod verify;
pub mod voice;
