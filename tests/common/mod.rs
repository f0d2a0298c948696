//! Shared test harness: real peers (slapd, radclient, pyrad, oathtool) and the radmfa binary.
#![allow(dead_code)]

pub mod peers;
pub mod radmfa;
pub mod slapd;
