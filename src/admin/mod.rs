//! What the CLI does beyond parsing: serving, user administration, audit queries.

pub mod audit;
pub mod serve;
pub mod users;
