//! RADIUS wire format: the `radius` crate's packet codec and dictionary, wrapped with what it
//! lacks — Message-Authenticator (RFC 3579/2869) in constant time, the BlastRADIUS rules
//! (CVE-2024-3596), reply building with Message-Authenticator first and Proxy-State echoed.
//! No I/O and no tokio here, so it can be fuzzed and unit-tested against RFC vectors.

pub mod client;
pub mod crypto;
pub mod reply;
pub mod reply_attr;
pub mod request;
pub mod unsupported;

pub use reply::{attributes_fit, encode_reply, state_fits, Reply, ReplyCode};
pub use request::{decode_request, decode_request_over, DecodeError, Request, RequestKind};

/// RFC 2865 §3: "The maximum length is 4096" octets.
pub const MAX_PACKET: usize = 4096;
