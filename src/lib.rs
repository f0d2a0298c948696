//! radmfa: a RADIUS server that adds a second factor (TOTP/HOTP codes, SMS, a phone call) to
//! an LDAP/Active Directory password check, for VPN concentrators, RD Gateway and network appliances.
//!
//! Module map, in the order a request meets them:
//!
//! - [`server`]: UDP sockets, client table, RFC 5080 duplicate cache, permits, shutdown.
//! - [`radius`]: wire format (no I/O): decode + verify, Message-Authenticator, replies.
//! - [`pipeline`]: one request start to finish; the single audit exit.
//! - [`auth`]: the primary factor (`PrimaryAuth`, `LdapAuth`).
//! - [`mfa`]: TOTP/HOTP verification, enrollment, SMS codes, calls, app passwords, State.
//! - [`delivery`]: SMS and call providers (`CodeSender`, `VoiceCaller`: generic HTTP, Twilio).
//! - [`callbacks`]: the HTTP listener for provider callbacks, signatures verified.
//! - [`store`]: the `Store` trait, `SqliteStore` (embedded) and `PgStore` (several nodes);
//!   seeds sealed with a separate key file.
//! - [`config`]: TOML → validated `Config`, errors that name the key.
//! - [`import`]: reading token files (CSV, PSKC RFC 6030) into tokens to store.
//! - [`admin`]: the CLI's user, token and audit commands.
//! - [`client`]: our own RADIUS client: interactive login and the load generator.
//! - [`app`], [`cli`], [`telemetry`], [`clock`], [`secret`]: wiring and small shared types.

/// The release and the build (`0.1.0 (git 0315531, 2026-12-05)`; see build.rs): what
/// `--version`, the start-up log and `radmfa_build_info` say.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RADMFA_BUILD"), ")");

pub mod admin;
pub mod app;
pub mod auth;
pub mod callbacks;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod file_stamp;
pub mod import;
pub mod log_once;
pub mod mfa;
pub mod pipeline;
pub mod radius;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod timing_pad;
