//! What the CLI does beyond parsing: serving, user and token administration, audit queries.

pub mod app_passwords;
pub mod audit;
pub mod audit_follow;
pub mod backup;
pub mod bypass;
pub mod check;
pub mod migrate;
pub mod phone;
#[cfg(unix)]
pub mod reload;
pub mod review;
pub mod serve;
pub mod token_import;
pub mod tokens;
pub mod users;
