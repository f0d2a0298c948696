//! Shared test harness: real peers (slapd, radclient, pyrad, oathtool, PostgreSQL,
//! FreeRADIUS) and the radmfa binary.
#![allow(dead_code)]

pub mod freeradius;
pub mod frozen;
pub mod http_proxy;
pub mod oob_env;
pub mod peers;
pub mod pki;
pub mod ports;
pub mod postgres;
pub mod provider_standin;
pub mod radmfa;
pub mod slapd;
pub mod small_disk;
pub mod wan_relay;
