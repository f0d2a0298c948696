//! No user enumeration by timing: the reply's time must not tell an unknown user from a
//! known one. A test binary of its own because `cargo test` runs test binaries one after
//! another, and `scripts/run-tests.py` runs this one alone after all the others: the latency
//! distributions it compares are not measured while another test (the fault tests in
//! `tests/robustness.rs`: kill -9 under load, a datagram storm) loads the machine.

mod common;

#[path = "robustness/timing.rs"]
mod timing;
#[path = "robustness/udp.rs"]
mod udp;

use std::net::UdpSocket;
use std::time::Duration;

use common::radmfa::{Nas, Options, Server, SECRET};
use common::slapd::{LdapUser, Slapd};
use radmfa::radius::client::AccessRequestBuilder;
use udp::{ask, socket_from};
