//! Persistent state behind one trait: tokens (encrypted seeds), per-user lockout counters,
//! pending challenges, out-of-band transactions, app passwords, send limits and the audit log.
//!
//! `SqliteStore` is the embedded default; `PgStore` implements the same trait for several
//! nodes sharing state, and one behaviour battery (tests/store_battery) runs on both. Every check-and-update that guards security (a TOTP step consumed
//! once, a State consumed once, the failure counter) is a single atomic statement in the
//! database, never a read-then-write in a node's memory, so it stays correct across nodes.

pub mod audit_reader;
mod audit_sql;
pub mod columns;
pub mod delivery;
pub mod durability;
#[cfg(unix)]
pub mod file_watch;
pub mod key_path;
pub mod moved;
mod pool_close;
pub mod pool_options;
pub mod postgres;
pub mod seal;
#[cfg(unix)]
pub mod serving_lock;
pub mod sqlite;
mod sqlite_delivery;
mod sqlite_key_check;
mod sqlite_reads;
mod sqlite_remembered;
mod sqlite_tokens;
mod sqlite_writer;
mod stale_wal;
#[cfg(unix)]
pub mod writable;

/// A call's row outlives the call by this long: a fraud report (0#) may come after the
/// call's lifetime (a long greeting, a slow callee), and with the row gone it would find
/// nothing to act on, blocking no one. An approval that late is refused by its handler.
pub(crate) const VOICE_ROW_GRACE: i64 = 3600;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub use delivery::{
    AppPassword, BypassWas, CancelledOob, LoginOrigin, OobBegin, OobKind, OobStatus,
    OobTransaction, RememberedLogin, SendLimit, UserProfile, BYPASS_LONGEST_SECS, OOB_CANCELLED,
};
pub use postgres::PgStore;
pub use seal::{KeyFile, Sealer};
pub use sqlite::SqliteStore;

/// `Db` and `Migrate` show the driver's error in their message and do not also give it as
/// their `source`: sqlx's own messages already repeat their source, and `{:#}` (the CLI's
/// error line) printed "disk I/O error" three times.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    // No "wrong key file?": the key is proven when the store opens (its key check), and a
    // key that is not the database's is refused then with its own message; a seed that
    // does not open later is its row's problem.
    #[error("cannot decrypt a stored secret: {0}")]
    Decrypt(String),
    #[error("key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("{0} already exists")]
    Conflict(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("{0} is not supported by this store")]
    Unsupported(&'static str),
    /// An error from the SQLite store's own write connection (rusqlite).
    #[error("database error: {0}")]
    Sqlite(String),
    /// A write ran but its transaction did not commit (or could not start): it is not done.
    #[error("write not committed: {0}")]
    Commit(String),
    /// A request's audit record was not written; the request's own writes, committed
    /// before it was handed in, stand (PostgreSQL's shared audit insert).
    #[error("the audit insert failed: {0}")]
    AuditNotWritten(String),
    /// A SQLite database not opened, because SQLite would apply a `-wal` file that is not
    /// its own to it (see `stale_wal`); the text names both files and what to do.
    #[error("{0}")]
    StaleWal(String),
    /// PostgreSQL refused radmfa's role a table at open; the text says what to grant.
    #[error("database error: {0}")]
    PermissionDenied(String),
    /// The token inventory changed between an import's checks and its write (see
    /// [`InventorySeen`]); nothing was written. The text says what changed.
    #[error("{0}")]
    InventoryChanged(String),
}

/// Held while an import has its turn ([`Store::import_turn`]); dropped, it ends.
pub struct ImportTurn(
    // Held for its drop: the lock file's descriptor, or the PostgreSQL session.
    #[allow(dead_code)] pub(crate) Box<dyn std::any::Any + Send + Sync>,
);

/// What an import's checks saw of the token inventory, checked again under the import's
/// write lock. The checks (a seed already stored under another serial, a held token moved
/// without --force) read every token first, which takes seconds for a large inventory and
/// cannot hold the write lock meanwhile (logins write too): two imports at once each stored
/// one seed under its own serial, and an import replacing a token moved it from the user an
/// admin had just given it to, with no --force and no record of the move (red team).
#[derive(Debug, Clone, Default)]
pub struct InventorySeen {
    /// The highest token id the checks read (ids are never reused): a token stored since,
    /// by another import or an enrollment, was not checked against.
    pub last_id: i64,
    /// The tokens the import replaces, with the owner the checks saw.
    pub owners: Vec<(String, Option<String>)>,
}

/// Whether the inventory is as `seen` says, given what the import's transaction read: the
/// first token stored since (`added`), and each of `seen.owners`' serials' owner now (in
/// their order; `None` for a token no longer there).
pub(crate) fn inventory_unchanged(
    seen: &InventorySeen,
    added: Option<String>,
    now: &[Option<Option<String>>],
) -> Result<(), StoreError> {
    const AGAIN: &str = "nothing was imported; run the import again, and it checks the file \
                         against the store as it is now";
    if let Some(serial) = added {
        return Err(StoreError::InventoryChanged(format!(
            "token {} was stored while this import checked the file against the store \
             (another import, or an enrollment), so its seed was not compared with the \
             file's: {AGAIN}",
            crate::admin::printable(&serial)
        )));
    }
    for ((serial, before), now) in seen.owners.iter().zip(now) {
        let Some(now) = now.clone() else {
            return Err(StoreError::InventoryChanged(format!(
                "token {} was deleted while this import checked the file against the store: \
                 {AGAIN}",
                crate::admin::printable(serial)
            )));
        };
        if *before != now {
            let who = |o: &Option<String>| {
                o.as_deref().map_or_else(
                    || "nobody (in stock)".to_string(),
                    |o| crate::admin::printable(o).into_owned(),
                )
            };
            return Err(StoreError::InventoryChanged(format!(
                "token {} was given to {} while this import checked the file against the \
                 store (it was {}'s): {AGAIN}",
                crate::admin::printable(serial),
                who(&now),
                who(before)
            )));
        }
    }
    Ok(())
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

/// The key a user is stored under. Directories compare user names case-insensitively and
/// ignore surrounding spaces (`Alice ` finds the same LDAP entry as `alice`), so the store
/// must too: otherwise `Alice` would find no token and skip the second factor.
pub fn user_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Totp,
    Hotp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OtpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl OtpAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            OtpAlgorithm::Sha1 => "SHA1",
            OtpAlgorithm::Sha256 => "SHA256",
            OtpAlgorithm::Sha512 => "SHA512",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(OtpAlgorithm::Sha1),
            "SHA256" => Some(OtpAlgorithm::Sha256),
            "SHA512" => Some(OtpAlgorithm::Sha512),
            _ => None,
        }
    }
}

/// A token to create. The store seals `secret` before it touches the database.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub serial: String,
    pub user: Option<String>,
    pub kind: TokenKind,
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    /// TOTP time step in seconds (ignored for HOTP).
    pub period: u32,
    /// HOTP: next expected counter value.
    pub counter: u64,
    pub secret: Secret,
}

impl NewToken {
    /// The token as it will be once stored, before it is (no id, nothing used yet): for
    /// checking a code against a token not stored yet (`enroll-totp --verify`).
    pub fn preview(&self) -> Token {
        Token {
            id: 0,
            serial: self.serial.clone(),
            user: self.user.clone(),
            kind: self.kind,
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
            counter: self.counter,
            last_step: None,
            enabled: true,
            created_at: 0,
            secret: self.secret.clone(),
        }
    }
}

/// What [`Store::add_first_token`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstToken {
    /// Stored, with this id.
    Added(i64),
    /// Nothing stored: these names hold tokens, as (name, serial), by name asked for, each
    /// name's tokens in the order they were stored.
    Held(Vec<(String, String)>),
}

/// What [`Store::delete_user_tokens`] and [`Store::delete_user`] did to the user's tokens:
/// their serials, sorted, so that the audit names each token taken away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokensRemoved {
    /// App seeds deleted.
    pub deleted: Vec<String>,
    /// Imported tokens returned to stock.
    pub returned: Vec<String>,
}

impl TokensRemoved {
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.returned.is_empty()
    }
}

/// A stored token with its seed decrypted.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub serial: String,
    pub user: Option<String>,
    pub kind: TokenKind,
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    pub period: u32,
    pub counter: u64,
    /// TOTP: the last time step accepted, so that step (and earlier ones) is refused afterwards.
    pub last_step: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
    pub secret: Secret,
}

/// What a login read of a token, which must still hold when it uses a code: an admin may
/// have given the token away, or replaced it with another period, meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenAsRead<'a> {
    pub owner: Option<&'a str>,
    pub period: u32,
}

/// What [`Store::consume_totp_step_seen`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUse {
    /// The step is this login's.
    Taken,
    /// Another login used a step since `seen` was read: the token's last used step and
    /// drift now.
    Moved { last_step: Option<i64>, drift: i64 },
    /// Deleted, disabled or given to someone else since it was read.
    Gone,
}

/// What [`Store::advance_hotp_counter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterUse {
    /// The counter moved: the code is this caller's.
    Taken,
    /// The counter was not at `expected` (another login or a resync moved it; or the new
    /// counter was not ahead of it): where it is now.
    Moved { counter: u64 },
    /// Deleted, or for a login disabled or given to someone else, since it was read.
    Gone,
}

/// Inventory data and verification state of a token beyond [`Token`]. A separate type so
/// code that builds `Token` values is unaffected by the hardware-token inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenExtra {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// The token must not verify before this instant (Unix seconds).
    pub valid_from: Option<i64>,
    /// The token must not verify from this instant on (Unix seconds).
    pub valid_until: Option<i64>,
    /// TOTP: how many steps the token's clock runs ahead (+) or behind (-) of ours, learned
    /// from the last accepted code; the look-ahead window is centred on it.
    pub drift: i64,
    /// HOTP self-service resynchronisation: after a code beyond the look-ahead window, the
    /// counter the *next* code must have, and when that first code came (Unix seconds).
    pub resync: Option<(u64, i64)>,
    /// The seed was made by `radmfa user enroll-totp` for its user's authenticator app: it
    /// exists nowhere else, so it is never given to another user or returned to stock (the
    /// store's `origin = 'enroll'`). Imports never set it.
    pub enrolled: bool,
    /// Set, with the reason, when the token's seed did not open (a damaged row, or one whose
    /// serial was changed outside radmfa: the serial is the seed's associated data). Only the
    /// admin reads ([`Store::list_tokens`], [`Store::token_record`]) return such a token,
    /// with an empty seed, so an admin can see it and delete or replace it; it verifies no
    /// code, and a login's own read of the user's tokens still fails on it.
    pub unreadable_seed: Option<String>,
}

/// A token with its inventory data, as the token commands and verification see it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub token: Token,
    pub extra: TokenExtra,
}

/// Which tokens [`Store::list_tokens`] returns. Default: all of them.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    /// Only tokens owned by this user (a [`user_key`]).
    pub user: Option<String>,
    /// Only tokens nobody owns (in stock).
    pub unassigned: bool,
    /// Only tokens whose serial starts with this (exactly: case counts).
    pub serial_prefix: Option<String>,
    /// At most this many, the first by serial.
    pub limit: Option<u32>,
}

/// Users read at a time by [`Store::list_users`]: a few hundred KB of rows.
pub const USERS_PAGE: u32 = 500;

/// Per-user second-factor state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserStatus {
    pub user: String,
    /// Consecutive wrong codes since the last success.
    pub failures: u32,
    /// Second factor locked until this instant (Unix seconds), if locked.
    pub locked_until: Option<i64>,
    pub token_count: u32,
}

/// A user as `user list` shows them: the lockout state and what else the store holds of
/// them, so that a row with no token says why the user is listed (a waiting bypass, a fraud
/// block, an app password) without a `user show` per user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSummary {
    pub status: UserStatus,
    /// The stored default method (`user set-method`), if any.
    pub method: Option<String>,
    /// A phone number stored with `user set-phone` (not the directory's).
    pub phone: bool,
    /// Blocked by a fraud report since this instant.
    pub blocked_at: Option<i64>,
    /// A one-time bypass waiting until this instant (at the `now` of the listing).
    pub bypass_until: Option<i64>,
    pub app_passwords: u32,
    /// Remembered logins still in force at the `now` of the listing.
    pub remembered: u32,
}

/// A challenge waiting for the user's code. Keyed by a hash of the State we sent, so the
/// database alone cannot be used to answer someone's pending challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChallenge {
    /// SHA-256 of the State attribute value.
    pub state_hash: Vec<u8>,
    pub user: String,
    /// Name of the NAS (client table entry) the challenge was issued to.
    pub nas: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Wrong codes entered against this challenge so far.
    pub attempts: u32,
    /// What the first request told us that the follow-up may lack (Calling-Station-Id, the
    /// directory attributes for the audit record), as JSON.
    pub context: String,
}

/// An answer's claim on one of a pending challenge's `max_attempts`, taken before the
/// answer is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeAttempt {
    /// This answer is attempt `n`, and the prompt stays open for another: a right answer
    /// still has to consume the challenge, a wrong one leaves it open.
    Open(u32),
    /// This answer took the last attempt, and the challenge is already closed (deleted):
    /// a right answer needs no consume, a wrong one ends the prompt.
    Last,
    /// Unknown, used or out of attempts: the answer must not be checked at all.
    Closed,
}

/// One audit record: exactly one per request that passed verification, plus admin events
/// (lock, unlock, reset). Never holds a password, code or seed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: i64,
    /// Unix seconds.
    pub time: i64,
    pub user: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Serial of the token that verified (or was tried).
    pub token_serial: Option<String>,
    /// totp, hotp, sms, voice, app-password, exempt, bypass, remembered, fail-open,
    /// primary-only, lockout (an automatic lock), admin, none
    pub mode: String,
    /// accept, reject, challenge, drop, lock, unlock, reset, status
    pub result: String,
    pub reason: Option<String>,
    pub server_name: String,
    pub server_ip: Option<String>,
    /// Calling-Station-Id, or the NAS address when there is none.
    pub client_ip: Option<String>,
    /// The address the request came from: the NAS, or a proxy in front of it. None for
    /// admin records.
    #[serde(default)]
    pub nas_ip: Option<String>,
    /// What the NAS calls itself: NAS-Identifier, else NAS-IP-Address or
    /// NAS-IPv6-Address (a proxy passes these on). None for admin records.
    #[serde(default)]
    pub nas_identifier: Option<String>,
    pub nas_name: Option<String>,
    pub latency_ms: i64,
    /// Admin records: the account that ran the command (see `admin::actor`).
    pub actor: Option<String>,
}

impl AuditRecord {
    /// The record as both stores keep it: a NUL in any text becomes U+FFFD. PostgreSQL
    /// refuses NUL in text (SQLSTATE 22021) and would lose the record, while a record may
    /// quote one that came off the wire (a User-Name refused for it) or from a directory
    /// (Active Directory ends its diagnostic messages with one). SQLite does the same, so the
    /// two stores agree and a SQLite store can move to PostgreSQL.
    pub fn storable(&self) -> std::borrow::Cow<'_, AuditRecord> {
        let texts = [
            Some(&self.user),
            self.first_name.as_ref(),
            self.last_name.as_ref(),
            self.email.as_ref(),
            self.phone.as_ref(),
            self.token_serial.as_ref(),
            Some(&self.mode),
            Some(&self.result),
            self.reason.as_ref(),
            Some(&self.server_name),
            self.server_ip.as_ref(),
            self.client_ip.as_ref(),
            self.nas_ip.as_ref(),
            self.nas_identifier.as_ref(),
            self.nas_name.as_ref(),
            self.actor.as_ref(),
        ];
        if !texts.into_iter().flatten().any(|t| t.contains('\0')) {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut r = self.clone();
        let fix = |t: &mut String| {
            if t.contains('\0') {
                *t = t.replace('\0', "\u{FFFD}");
            }
        };
        for t in [&mut r.user, &mut r.mode, &mut r.result, &mut r.server_name] {
            fix(t);
        }
        for t in [
            &mut r.first_name,
            &mut r.last_name,
            &mut r.email,
            &mut r.phone,
            &mut r.token_serial,
            &mut r.reason,
            &mut r.server_ip,
            &mut r.client_ip,
            &mut r.nas_ip,
            &mut r.nas_identifier,
            &mut r.nas_name,
            &mut r.actor,
        ]
        .into_iter()
        .flatten()
        {
            fix(t);
        }
        std::borrow::Cow::Owned(r)
    }
}

/// What a login needs to know about one user, read together: every token (enabled or not)
/// with its inventory data, the lockout state and the profile.
#[derive(Debug, Clone, Default)]
pub struct UserSnapshot {
    pub tokens: Vec<TokenRecord>,
    pub status: UserStatus,
    pub profile: UserProfile,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user: Option<String>,
    pub result: Option<String>,
    /// How the login was decided (the record's mode: totp, bypass, exempt, …).
    pub mode: Option<String>,
    /// Records at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Records before this time, not at it: reports over consecutive windows (`--since T1
    /// --until T2`, then `--since T2 --until T3`) count a record stamped T2 once, not twice.
    pub until: Option<i64>,
    /// Only records of this node (`[server] name`).
    pub server: Option<String>,
    /// Only records of this client entry (the NAS's name in the configuration).
    pub nas: Option<String>,
    /// Only records naming this token (a login it decided, an admin action on it).
    pub token: Option<String>,
    /// Only records of logins from this address (the record's client_ip: the
    /// Calling-Station-Id, or the NAS address when there is none).
    pub client_ip: Option<String>,
    pub limit: u32,
    /// Only records with a larger id, oldest (lowest id) first: `radmfa audit --follow`
    /// asking for what arrived since. Without it, records come newest first.
    pub after_id: Option<i64>,
    /// Newest first, only records after this one (its time and id) in that order: the next
    /// page of a listing read a page at a time.
    pub before: Option<(i64, i64)>,
    /// Newest by id, not by time (without `after_id`): the last records written, as
    /// `audit --follow` starts from. By time, one record stamped ahead (a clock that ran
    /// fast once) stayed among the "newest", and every record written after it by id was
    /// then printed again as new.
    pub newest_by_id: bool,
}

/// What [`Store::audit_counts`] groups records by (`radmfa audit --count-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditGroup {
    User,
    Nas,
    Mode,
    Result,
    Reason,
    /// The UTC calendar day, `YYYY-MM-DD`.
    Day,
    /// The node that wrote the record (`[server] name`).
    Server,
    /// Where the login came from (the record's client_ip: the Calling-Station-Id, or the
    /// NAS address when there is none): a password spray's sources.
    ClientIp,
}

/// How many records of one group had one result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCount {
    /// The group's value; `-` where the column is empty (no NAS, no reason).
    pub key: String,
    pub result: String,
    pub count: u64,
}

/// All user-name arguments are keys made by [`user_key`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key one-time SMS codes are hashed with: from the key file, like the seeds' key,
    /// so every node of a cluster has it and the database alone does not.
    fn sms_code_key(&self) -> &[u8];

    // --- tokens ---
    /// Creates a token; `Conflict` if the serial exists.
    async fn add_token(&self, token: NewToken) -> Result<i64, StoreError>;
    /// [`Store::add_token`] only if none of `holders` (the token's owner, and the other
    /// names of its owner's directory entry) holds a token, enabled or not: the look and the
    /// insert are one step, taken in turn with every other call naming one of them. Checked
    /// first and stored after, two enrollments at once (two admins, a script run twice) both
    /// found no token and both stored one.
    async fn add_first_token(
        &self,
        token: NewToken,
        holders: &[String],
    ) -> Result<FirstToken, StoreError>;
    /// Enabled and disabled tokens owned by `user`, seeds decrypted.
    async fn tokens_for_user(&self, user: &str) -> Result<Vec<Token>, StoreError>;
    async fn token_by_serial(&self, serial: &str) -> Result<Option<Token>, StoreError>;
    /// Atomically records `step` as used if it is later than the token's last used step.
    /// Returns false if that step (or a later one) was already used: a replay.
    async fn consume_totp_step(&self, token_id: i64, step: i64) -> Result<bool, StoreError>;
    /// Atomically moves an HOTP counter from `expected` to `new_counter` (compare-and-set).
    /// `login_owner`: a login's use of a code, which also needs the token still enabled and
    /// that user's (an admin may have disabled it or given it away since the login read
    /// it); `None` for `token resync`, which an admin runs on any token. When the counter
    /// does not move, the token is read where the write was tried (a winner's write not yet
    /// committed is seen), so the caller can tell a race it lost from a token withdrawn.
    async fn advance_hotp_counter(
        &self,
        token_id: i64,
        expected: u64,
        new_counter: u64,
        login_owner: Option<&str>,
    ) -> Result<CounterUse, StoreError>;
    /// Takes every token away from `user`: seeds enrolled for an app are deleted (they exist
    /// nowhere else), imported tokens go back to stock, unassigned, keeping their counter
    /// and drift — a hardware token is still on someone's desk.
    async fn delete_user_tokens(&self, user: &str) -> Result<TokensRemoved, StoreError>;

    // --- token inventory (hardware and imported tokens) ---
    // The defaults refuse, so a backend that has not implemented them yet fails closed; every
    // real backend overrides all of them (the store battery checks it).
    /// Adds all of `tokens` in one transaction: all of them or, on any error, none. An existing
    /// serial is `Conflict` unless `replace`, which overwrites seed, parameters and inventory
    /// data, keeps the owner when the new token names none, and keeps what was learned: a
    /// disabled token stays disabled, a used TOTP step stays used, and for the same seed the
    /// counter never goes back and the drift stays. Returns how many rows were written.
    async fn import_tokens(
        &self,
        tokens: &[(NewToken, TokenExtra)],
        replace: bool,
    ) -> Result<u64, StoreError> {
        self.import_tokens_audited(tokens, replace, &[], None).await
    }
    /// `token import`'s turn: imports one at a time on the store, from the read of the
    /// inventory its checks make to its commit, while it is held. Blocks while another
    /// import holds it (saying so on stderr). What logins and other commands change
    /// meanwhile is checked at the write ([`InventorySeen`]).
    async fn import_turn(&self) -> Result<ImportTurn, StoreError> {
        Ok(ImportTurn(Box::new(())))
    }
    /// [`Store::import_tokens`], with `audit` written in the same transaction: the records
    /// of what the import did (whom each token was given to) are there exactly when the
    /// tokens are. Written after it, a `kill -9` in between left 100,000 tokens with 394 of
    /// their records, and a second run was refused for the serials it found.
    /// With `seen`, refused with [`StoreError::InventoryChanged`] when a token was stored
    /// since, or a replaced token's owner changed, under the import's write lock.
    async fn import_tokens_audited(
        &self,
        tokens: &[(NewToken, TokenExtra)],
        replace: bool,
        audit: &[AuditRecord],
        seen: Option<&InventorySeen>,
    ) -> Result<u64, StoreError> {
        let _ = (tokens, replace, audit, seen);
        Err(StoreError::Unsupported("import_tokens"))
    }
    /// Tokens with inventory data, ordered by serial, seeds decrypted.
    async fn list_tokens(&self, filter: &TokenFilter) -> Result<Vec<TokenRecord>, StoreError> {
        let _ = filter;
        Err(StoreError::Unsupported("list_tokens"))
    }
    async fn token_record(&self, serial: &str) -> Result<Option<TokenRecord>, StoreError> {
        let _ = serial;
        Err(StoreError::Unsupported("token_record"))
    }
    /// Gives the token to `user`, or back to stock with `None`, if it is still held by
    /// `holder` (`None`: in stock), as the admin command saw it when it checked the move.
    /// False if no such serial or its holder changed meanwhile (another admin, another
    /// node): a check made on the old holder must not let a move through.
    async fn assign_token(
        &self,
        serial: &str,
        holder: Option<&str>,
        user: Option<&str>,
    ) -> Result<bool, StoreError> {
        let _ = (serial, holder, user);
        Err(StoreError::Unsupported("assign_token"))
    }
    /// False if no such serial.
    async fn set_token_enabled(&self, serial: &str, enabled: bool) -> Result<bool, StoreError> {
        let _ = (serial, enabled);
        Err(StoreError::Unsupported("set_token_enabled"))
    }
    /// False if no such serial.
    async fn delete_token(&self, serial: &str) -> Result<bool, StoreError> {
        let _ = serial;
        Err(StoreError::Unsupported("delete_token"))
    }
    /// `consume_totp_step` that also records the token's clock drift (in steps), atomically:
    /// true only for the one caller that moved `last_step` forward to `step`.
    async fn consume_totp_step_with_drift(
        &self,
        token_id: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        let _ = (token_id, step, drift);
        Err(StoreError::Unsupported("consume_totp_step_with_drift"))
    }
    /// `consume_totp_step_with_drift`, only if `last_step` is still `seen` (what the caller
    /// read when it matched the code) and the token is still enabled, and as `read` (its
    /// owner, and its period: steps of another period are other numbers): a
    /// login's use of its code. Two requests with one code may match different steps (a
    /// twin in the window, each request's now in another step); with `step > last_step`
    /// alone both could win, one after the other. When the step is not taken, the token's
    /// state is read where the write was tried, so that a winner's write not yet committed
    /// (SQLite's batch, PostgreSQL's row lock) is seen.
    async fn consume_totp_step_seen(
        &self,
        token_id: i64,
        read: TokenAsRead<'_>,
        seen: Option<i64>,
        step: i64,
        drift: i64,
    ) -> Result<StepUse, StoreError> {
        let _ = (token_id, read, seen, step, drift);
        Err(StoreError::Unsupported("consume_totp_step_seen"))
    }
    /// Moves a TOTP token's last used step BACK from `from` to `step`, with `drift`: for an
    /// admin's `token resync --clock-went-back` only (a token whose clock ran ahead and was
    /// put right shows only codes at or before its last used step). True only if
    /// `last_step` was still `from`: a login that used the token meanwhile wins.
    async fn rewind_totp_step(
        &self,
        token_id: i64,
        from: i64,
        step: i64,
        drift: i64,
    ) -> Result<bool, StoreError> {
        let _ = (token_id, from, step, drift);
        Err(StoreError::Unsupported("rewind_totp_step"))
    }
    /// Sets or clears the pending HOTP self-service resynchronisation ([`TokenExtra::resync`]).
    async fn set_hotp_resync(
        &self,
        token_id: i64,
        pending: Option<(u64, i64)>,
    ) -> Result<(), StoreError> {
        let _ = (token_id, pending);
        Err(StoreError::Unsupported("set_hotp_resync"))
    }

    // --- users ---
    /// Tokens, lockout state and profile of `user` in one call. The default makes three
    /// reads; a backend can answer it with one query (SQLite does: each statement there is a
    /// round trip to the connection's thread, and a login makes this read on every request).
    async fn user_snapshot(&self, user: &str) -> Result<UserSnapshot, StoreError> {
        let filter = TokenFilter {
            user: Some(user.to_string()),
            ..Default::default()
        };
        let tokens = self.list_tokens(&filter).await?;
        // The admin read marks a seed that does not open; a login's read fails on it, as
        // the backends' own snapshots do (docs/operations.md).
        if let Some(why) = tokens.iter().find_map(|r| r.extra.unreadable_seed.clone()) {
            return Err(StoreError::Decrypt(why));
        }
        Ok(UserSnapshot {
            tokens,
            status: self.user_status(user).await?,
            profile: self.user_profile(user).await?,
        })
    }

    // --- users: lockout ---
    /// Known users: everyone who holds a token or has second-factor state (a lockout
    /// record, a profile: phone, method, block, bypass; an app password; a remembered login).
    /// Users the store holds anything of; a lock, a bypass or a remembered login counts
    /// while it lasts at `now` (the node's clock, as logins judge them: not the database
    /// host's).
    async fn list_users(&self, now: i64) -> Result<Vec<UserSummary>, StoreError> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|u: &UserSummary| u.status.user.clone());
            let page = self
                .list_users_page(now, after.as_deref(), USERS_PAGE)
                .await?;
            let done = page.len() < USERS_PAGE as usize;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }
    /// [`Self::list_users`] a page at a time, so a long list is shown without holding it
    /// all (`user list`): at most `limit`, those after `after` in the list's order (bytes,
    /// as the list is sorted). Each page is read on its own: a user added or gone between
    /// two pages is listed as the later page finds them.
    async fn list_users_page(
        &self,
        now: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserSummary>, StoreError>;
    async fn user_status(&self, user: &str) -> Result<UserStatus, StoreError>;
    /// Atomically adds one consecutive failure; if that reaches `threshold`, locks the user
    /// until `now + lock_secs` and resets the count. Returns (failures, newly_locked_until).
    /// A user locked at `now` already (another node locked them after this login read its
    /// standing) is left as is, and the answer is (0, None): counted, the failure would
    /// have started the new lock period's count.
    async fn record_failure(
        &self,
        user: &str,
        threshold: u32,
        now: i64,
        lock_secs: i64,
    ) -> Result<(u32, Option<i64>), StoreError>;
    /// A good code: zero the consecutive-failure count.
    async fn clear_failures(&self, user: &str) -> Result<(), StoreError>;
    /// Lifts a lock; returns whether the user was locked.
    async fn unlock_user(&self, user: &str, now: i64) -> Result<bool, StoreError>;
    /// Removes all second-factor state of a user (tokens, counters, challenges), treating
    /// tokens as [`Store::delete_user_tokens`] does. `None` when there was nothing under the
    /// name; else the tokens taken away (perhaps none).
    async fn delete_user(&self, user: &str) -> Result<Option<TokensRemoved>, StoreError>;

    // --- pending challenges ---
    async fn put_challenge(&self, challenge: &PendingChallenge) -> Result<(), StoreError>;
    /// The challenge for this State hash if it exists and has not expired at `now`.
    async fn challenge(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> Result<Option<PendingChallenge>, StoreError>;
    /// Deletes the challenge; true only for the one caller that actually removed it, so a
    /// State is consumed exactly once even when two nodes race.
    async fn consume_challenge(&self, state_hash: &[u8]) -> Result<bool, StoreError>;
    /// Takes one of the challenge's `max_attempts` for an answer about to be checked;
    /// deletes the challenge when that was the last. Atomic, so answers sent all at once to
    /// one State (to this node or to several) check at most `max_attempts` codes between
    /// them, however their checks interleave.
    async fn take_attempt(
        &self,
        state_hash: &[u8],
        max_attempts: u32,
    ) -> Result<ChallengeAttempt, StoreError>;
    /// Whether `user` has an unexpired challenge issued through client `nas`. Read only to
    /// explain a failed password: a code typed at our prompt that arrives as a fresh login
    /// means the NAS did not send our State back.
    async fn has_open_challenge(&self, user: &str, nas: &str, now: i64)
        -> Result<bool, StoreError>;
    /// Deletes expired challenges; returns how many.
    async fn purge_expired_challenges(&self, now: i64) -> Result<u64, StoreError>;
    /// How many challenges are open at `now` (issued, not answered, not expired), in the
    /// whole store: the nodes sharing one count the same. For a gauge, once a minute.
    async fn count_open_challenges(&self, now: i64) -> Result<u64, StoreError>;
    /// Closes every open prompt of `user` (an admin took the number or the tokens away:
    /// a prompt opened before must not go on to resend or switch); returns how many.
    async fn close_challenges(&self, user: &str) -> Result<u64, StoreError>;
    /// Closes every open prompt issued through client `nas` (a reload took the entry out:
    /// a later entry of that name, another device perhaps, must not finish them); returns
    /// how many.
    async fn close_client_challenges(&self, nas: &str) -> Result<u64, StoreError>;

    // --- out-of-band factors (issue 4) ---
    // Defaults refuse, as for the token inventory, so a backend that lacks them fails closed.
    /// Phone, default method and fraud block of `user` (all `None` if never set).
    async fn user_profile(&self, user: &str) -> Result<UserProfile, StoreError> {
        let _ = user;
        Err(StoreError::Unsupported("user_profile"))
    }
    /// Stores (or with `None` clears) the user's E.164 number.
    async fn set_phone(&self, user: &str, phone: Option<&str>) -> Result<(), StoreError> {
        let _ = (user, phone);
        Err(StoreError::Unsupported("set_phone"))
    }
    /// Stores (or with `None` clears) the user's default method ("totp", "sms", "voice").
    async fn set_method(&self, user: &str, method: Option<&str>) -> Result<(), StoreError> {
        let _ = (user, method);
        Err(StoreError::Unsupported("set_method"))
    }
    /// Blocks the user (fraud report). False if already blocked; the first reason stays.
    async fn block_user(&self, user: &str, at: i64, reason: &str) -> Result<bool, StoreError> {
        let _ = (user, at, reason);
        Err(StoreError::Unsupported("block_user"))
    }
    /// Lifts a block; returns whether the user was blocked.
    async fn unblock_user(&self, user: &str) -> Result<bool, StoreError> {
        let _ = user;
        Err(StoreError::Unsupported("unblock_user"))
    }
    /// [`Self::set_bypass`] and its audit record in one transaction: a login can take the
    /// bypass only once its grant is on record, and a record that fails leaves whatever
    /// waited before. Written one after the other, a login took a new bypass between the
    /// two: its use stood in the audit before the grant, and `--cancel` then said "check the
    /// spelling" (review).
    /// Only if the bypass is still `only_if` (a cancel must not claim one a login used
    /// meanwhile; a grant must not say it replaced one another admin's grant replaced:
    /// review): false, and nothing written, if it is not.
    async fn set_bypass_audited(
        &self,
        user: &str,
        until: Option<i64>,
        only_if: BypassWas,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let _ = (user, until, only_if, record);
        Err(StoreError::Unsupported("set_bypass_audited"))
    }
    /// Sets (or with `None` cancels) a one-time bypass valid until `until`.
    async fn set_bypass(&self, user: &str, until: Option<i64>) -> Result<(), StoreError> {
        let _ = (user, until);
        Err(StoreError::Unsupported("set_bypass"))
    }
    /// Puts `earlier` back as the user's bypass only if it is still `expected` (set by the
    /// caller, not used or replaced since): true if it was. A bypass set while a clock ran
    /// ahead is taken away this way (`None`), without touching one an admin granted since.
    async fn restore_bypass(
        &self,
        user: &str,
        expected: i64,
        earlier: Option<i64>,
    ) -> Result<bool, StoreError> {
        let _ = (user, expected, earlier);
        Err(StoreError::Unsupported("restore_bypass"))
    }
    /// Uses the user's bypass if one is valid at `now`: true for the one caller that
    /// cleared it, so it works once even when two nodes race.
    async fn take_bypass(&self, user: &str, now: i64) -> Result<bool, StoreError> {
        let _ = (user, now);
        Err(StoreError::Unsupported("take_bypass"))
    }
    /// Stores an app password's hash (keyed, or argon2id from earlier releases), bound to
    /// the directory entry `(dn, entry_id)` when known; returns its id.
    async fn add_app_password(
        &self,
        user: &str,
        label: Option<&str>,
        hash: &str,
        now: i64,
        entry: (Option<&str>, Option<&str>),
    ) -> Result<i64, StoreError> {
        let _ = (user, label, hash, now, entry);
        Err(StoreError::Unsupported("add_app_password"))
    }
    /// The user's app passwords, oldest first.
    async fn app_passwords(&self, user: &str) -> Result<Vec<AppPassword>, StoreError> {
        let _ = user;
        Err(StoreError::Unsupported("app_passwords"))
    }
    /// Deletes one app password of `user`; false if `user` has no such id.
    async fn delete_app_password(&self, user: &str, id: i64) -> Result<bool, StoreError> {
        let _ = (user, id);
        Err(StoreError::Unsupported("delete_app_password"))
    }
    /// Deletes all of the user's app passwords (lost phone); returns how many.
    async fn delete_app_passwords(&self, user: &str) -> Result<u64, StoreError> {
        let _ = user;
        Err(StoreError::Unsupported("delete_app_passwords"))
    }
    /// Records that an app password was just used, and by which directory entry if none is
    /// recorded yet (`dn` and `entry_id`, each kept once set; None where there is no
    /// directory, or it shows no identity): it is that entry's from then on.
    /// False when it no longer exists (deleted while the login was being checked): `user`
    /// and `hash` as the login read them, so an id reused since (SQLite) is not it.
    async fn touch_app_password(
        &self,
        id: i64,
        user: &str,
        hash: &str,
        now: i64,
        dn: Option<&str>,
        entry_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let _ = (id, user, hash, now, dn, entry_id);
        Err(StoreError::Unsupported("touch_app_password"))
    }
    /// Atomically: if every limit has fewer than `max` events in `(now - window_secs, now]`,
    /// records one event under each key, each marked as `slot`'s, and returns `None`;
    /// otherwise records nothing and returns the index of the first full limit. Shared by
    /// all nodes. `slot` names this send (its transaction's id), for
    /// [`release_send_slot`](Self::release_send_slot).
    async fn take_send_slot(
        &self,
        limits: &[SendLimit],
        now: i64,
        slot: &str,
    ) -> Result<Option<usize>, StoreError> {
        let _ = (limits, now, slot);
        Err(StoreError::Unsupported("take_send_slot"))
    }
    /// Gives back the events `take_send_slot` recorded as `slot`'s, under every key: a send
    /// the provider surely did not take counts against no limit. Only that send's rows, never
    /// another's taken at the same second; a second call finds nothing. Returns how many
    /// were deleted. A statement of its own (on PostgreSQL not in the request's
    /// transaction): its failure must not roll back, or fail, the request's writes.
    async fn release_send_slot(&self, slot: &str) -> Result<u64, StoreError> {
        let _ = slot;
        Err(StoreError::Unsupported("release_send_slot"))
    }
    /// Forgets the sends counted under `key` (`user-day:alice`) under the user's and the
    /// number's keys they were counted under, never the NAS's (see `USER_SEND_KEYS`): an
    /// admin lifting the send limits for one user (`radmfa user unlock`), whose day's
    /// allowance someone with the password used up. Returns how many sends were forgotten.
    async fn forget_sends(&self, key: &str) -> Result<u64, StoreError> {
        let _ = key;
        Err(StoreError::Unsupported("forget_sends"))
    }
    /// The sends counted under `key` (`phone-day:+4930…`) after `since` and not stamped
    /// ahead of `now` by more than nodes' skew (as `take_send_slot` counts them), by the
    /// user whose login made them: the entry key of the same send's `user-day:` event, ""
    /// for a send an earlier release recorded (no slot ties its events). What `user show`
    /// and `user unlock` say of a user's and its number's limits.
    async fn sends_since(
        &self,
        key: &str,
        since: i64,
        now: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let _ = (key, since, now);
        Err(StoreError::Unsupported("sends_since"))
    }
    /// Forgets every send to `phone` in the number's own limits (`phone:`, `phone-day:`),
    /// whoever's login made it; the users' and the NAS's limits still count them. For
    /// `user unlock` of a user refused because other names' sends used up the number they
    /// share (an admin account and a normal one, a shared desk phone). Returns how many
    /// sends were forgotten.
    async fn forget_number_sends(&self, phone: &str) -> Result<u64, StoreError> {
        let _ = phone;
        Err(StoreError::Unsupported("forget_number_sends"))
    }
    /// Inserts `txn` unless a transaction with the same `request_key` exists, which is
    /// returned instead: exactly one caller gets `Created`, also across nodes.
    async fn begin_oob(&self, txn: &OobTransaction) -> Result<OobBegin, StoreError> {
        let _ = txn;
        Err(StoreError::Unsupported("begin_oob"))
    }
    /// The transaction with this id, expired or not.
    async fn oob(&self, id: &str) -> Result<Option<OobTransaction>, StoreError> {
        let _ = id;
        Err(StoreError::Unsupported("oob"))
    }
    /// Records the provider's reference; returns the transaction's status and reason as they
    /// are then (a call cancelled while it was being placed is `Failed` already, and must be
    /// hung up).
    async fn set_oob_provider_ref(
        &self,
        id: &str,
        provider_ref: &str,
    ) -> Result<Option<(OobStatus, Option<String>)>, StoreError> {
        let _ = (id, provider_ref);
        Err(StoreError::Unsupported("set_oob_provider_ref"))
    }
    /// Notes `reason` on a transaction still pending: a text the provider did not confirm,
    /// whose code is still taken, so that a copy of its request (on any node) tells the user
    /// the same. A transaction decided meanwhile is left as it is.
    async fn note_pending_oob(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let _ = (id, reason);
        Err(StoreError::Unsupported("note_pending_oob"))
    }
    /// Compare-and-set from `pending` to `status` (with a reason); true only for the one
    /// caller that moved it. A decided transaction never changes again, but to `fraud`: a
    /// fraud report on a call already decided (a held login gave up while it rang) marks it,
    /// once, so a replay of the report is known as one.
    async fn resolve_oob(
        &self,
        id: &str,
        status: OobStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let _ = (id, status, reason);
        Err(StoreError::Unsupported("resolve_oob"))
    }
    /// Fails every pending SMS code and call of `user` with `reason` (an admin changed the
    /// number or reset the user: a call ringing the old phone must not approve a login held
    /// for it); returns how many. A fraud report on such a call still marks it.
    /// `except` stays pending: the call whose fraud report cancels the others, marked by
    /// its own decision next (failed in between, the login held on it could read "not
    /// answered in time" instead of the fraud report).
    async fn cancel_oob(
        &self,
        user: &str,
        except: Option<&str>,
        reason: &str,
    ) -> Result<CancelledOob, StoreError> {
        let _ = (user, except, reason);
        Err(StoreError::Unsupported("cancel_oob"))
    }
    /// Records (or renews) a remembered second factor; one row per user, client and station.
    /// Not if the user's remembered factors were forgotten at or after `verified_at`: the
    /// login passed its factor before an admin took it away, and its row must not come back.
    /// (Times are whole seconds: a login verified in the forget's own second is not
    /// remembered either, which costs that user one more second factor next time; the
    /// other way round, the guard would miss nearly every real race, which takes
    /// milliseconds.) `delete_user` leaves the same mark.
    async fn remember_login(&self, login: &RememberedLogin) -> Result<(), StoreError> {
        let _ = login;
        Err(StoreError::Unsupported("remember_login"))
    }
    /// The user's remembered second factor on this client and station, if valid at `now`.
    async fn remembered_login(
        &self,
        user: &str,
        nas: &str,
        station: &str,
        now: i64,
    ) -> Result<Option<RememberedLogin>, StoreError> {
        let _ = (user, nas, station, now);
        Err(StoreError::Unsupported("remembered_login"))
    }
    /// The user's remembered second factors valid at `now`, soonest to expire first.
    async fn remembered_logins(
        &self,
        user: &str,
        now: i64,
    ) -> Result<Vec<RememberedLogin>, StoreError> {
        let _ = (user, now);
        Err(StoreError::Unsupported("remembered_logins"))
    }
    /// Forgets all of the user's remembered second factors; returns how many (expired ones
    /// included). Records `now` as when, so a login that verified before it cannot write
    /// one back ([`Store::remember_login`]).
    async fn forget_logins(&self, user: &str, now: i64) -> Result<u64, StoreError> {
        let _ = (user, now);
        Err(StoreError::Unsupported("forget_logins"))
    }
    /// The clients (`nas`) that remembered second factors are stored for, expired ones
    /// included, in no particular order.
    async fn remembered_clients(&self) -> Result<Vec<String>, StoreError> {
        Err(StoreError::Unsupported("remembered_clients"))
    }
    /// Ends the remembered second factors of client `nas` at `period` seconds after their
    /// second factor passed, for good (`None`: deletes them); returns how many rows it
    /// changed. For a period lowered or turned off (or the client taken out) since they
    /// were written: without it, raising the period again brought them back.
    async fn cut_remembered(&self, nas: &str, period: Option<i64>) -> Result<u64, StoreError> {
        let _ = (nas, period);
        Err(StoreError::Unsupported("cut_remembered"))
    }
    /// Deletes transactions and remembered second factors expired at `now` and send events
    /// older than a day; returns how many rows went.
    async fn purge_delivery_state(&self, now: i64) -> Result<u64, StoreError> {
        let _ = now;
        Err(StoreError::Unsupported("purge_delivery_state"))
    }

    // --- lifecycle ---
    /// Closes the store's connections at shutdown, after the last request (SQLite:
    /// checkpoints the WAL and logs how well group commit batched). Default: nothing.
    async fn close(&self) {}

    // --- audit ---
    async fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError>;
    /// Whether the audit table takes records now, leaving none behind: the health probe's
    /// check (`pipeline::health`), since every answered request needs its record. Default
    /// (SQLite): yes, its one writer commits the probe's challenge write and the records
    /// alike.
    async fn audit_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Newest first.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// The largest audit record id, whatever it matches (0 for none): how far `audit
    /// --follow` may move its settled floor when no new record matches its filter, so its
    /// queries start near the table's end instead of rescanning from the last match.
    async fn audit_top_id(&self) -> Result<i64, StoreError> {
        Err(StoreError::Unsupported("audit_top_id"))
    }
    /// Records matching `filter` (its limit ignored), counted per group and result: the
    /// authentication and usage reports. Unordered.
    async fn audit_counts(
        &self,
        filter: &AuditFilter,
        by: AuditGroup,
    ) -> Result<Vec<AuditCount>, StoreError>;
    /// Deletes up to `batch` of the oldest records older than `before`; returns how many.
    /// Batched so a large backlog never holds the write lock for long.
    async fn purge_audit(&self, before: i64, batch: u32) -> Result<u64, StoreError>;
}

/// Every migration `migrator` holds has the checksum migrations/checksums.txt pins for
/// `kind` ("sqlite", "postgres"), and every pin has its migration: an applied migration
/// edited in place (as 0015/0012 once were, minutes after being added) makes every store a
/// build migrated refuse to open under later builds.
#[cfg(test)]
pub(crate) fn assert_migrations_pinned(kind: &str, migrator: &sqlx::migrate::Migrator) {
    let pins: std::collections::BTreeMap<i64, &str> =
        include_str!("../../migrations/checksums.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(kind)).then(|| {
                    let version = f.next().and_then(|v| v.parse().ok()).expect("a version");
                    (version, f.next().expect("a checksum"))
                })
            })
            .collect();
    let built: std::collections::BTreeMap<i64, String> = migrator
        .iter()
        .map(|m| (m.version, hex::encode(&m.checksum)))
        .collect();
    for (version, checksum) in &built {
        match pins.get(version) {
            Some(pin) => assert_eq!(
                pin, checksum,
                "{kind} migration {version} differs from the one stores were migrated with: \
                 never edit an applied migration, add a new one"
            ),
            None => panic!(
                "{kind} migration {version} has no line in migrations/checksums.txt: add \
                 `{kind} {version} {checksum}` (and never edit the migration after)"
            ),
        }
    }
    assert_eq!(
        pins.keys().collect::<Vec<_>>(),
        built.keys().collect::<Vec<_>>(),
        "{kind}: a pinned migration is gone"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_keys_fold_case_and_spaces() {
        assert_eq!(super::user_key("  Alice "), "alice");
        assert_eq!(super::user_key("ALICE  Smith"), "alice smith");
    }
}
