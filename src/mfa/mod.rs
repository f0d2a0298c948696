//! Second factors: OATH codes (`otp`), enrollment (`enroll`) and the pending-challenge State
//! (`challenge`). SMS and voice delivery will live beside them.

pub mod challenge;
pub mod enroll;
pub mod otp;
