//! The SQLite store's reads on the login path — a user's snapshot and a pending challenge —
//! run on the calling thread through a small pool of rusqlite connections.
//!
//! Why not through sqlx like the other reads: sqlx runs each SQLite connection on a worker
//! thread of its own, so a read is a command message, a message per row and a completion,
//! each waking another thread. Profiled under load, that thread was a quarter of radmfa's
//! CPU for one read per request. These reads are a few rows from indexed tables, answered
//! from the page cache in tens of microseconds, and in WAL mode readers never wait for the
//! writer; so they run right here, on the request's own thread. `READ_BUSY_TIMEOUT` bounds
//! the rare wait (WAL recovery after a crash) so a tokio thread is never held for long: past
//! it the read fails and the login is refused (fail closed).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::columns::{open_seed, to_u32, to_u64, token_algorithm, token_kind};
use super::sqlite_writer::sqlite_err;
use super::{
    PendingChallenge, Sealer, StoreError, Token, TokenExtra, TokenRecord, UserProfile,
    UserSnapshot, UserStatus,
};

const READ_BUSY_TIMEOUT: Duration = Duration::from_millis(200);
/// Idle connections kept; more are opened when more reads run at once.
const KEEP_IDLE: usize = 8;

/// Read-only connections to the database file, reused.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Self {
        Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on an idle connection (or a new one) and returns the connection afterwards.
    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sqlite_err)?;
                c.busy_timeout(READ_BUSY_TIMEOUT).map_err(sqlite_err)?;
                c
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
        result
    }

    /// [`super::Store::user_snapshot`] in one statement: one row per token (ordered by
    /// serial, as `list_tokens`), or one row with NULL token columns for a user without
    /// tokens; the lockout and profile columns repeat on every row.
    pub(super) fn user_snapshot(
        &self,
        sealer: &Sealer,
        user: &str,
    ) -> Result<UserSnapshot, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(
                    "SELECT s.failures, s.locked_until, \
                            p.phone, p.method, p.blocked_at, p.blocked_reason, \
                            t.id, t.serial, t.user, t.kind, t.algorithm, t.digits, t.period, \
                            t.counter, t.last_step, t.enabled, t.created_at, t.secret, \
                            t.manufacturer, t.model, t.valid_from, t.valid_until, t.drift, \
                            t.resync_counter, t.resync_at \
                     FROM (SELECT ?1 AS name) AS u \
                     LEFT JOIN user_state s ON s.user = u.name \
                     LEFT JOIN user_profile p ON p.user = u.name \
                     LEFT JOIN tokens t ON t.user = u.name \
                     ORDER BY t.serial",
                )
                .map_err(sqlite_err)?;
            let mut rows = st.query([user]).map_err(sqlite_err)?;
            let mut snap = UserSnapshot::default();
            let mut first = true;
            while let Some(row) = rows.next().map_err(sqlite_err)? {
                if first {
                    first = false;
                    let failures: Option<i64> = row.get(0).map_err(sqlite_err)?;
                    snap.status = UserStatus {
                        user: user.to_string(),
                        failures: to_u32(failures.unwrap_or(0), "user_state.failures")?,
                        locked_until: row.get(1).map_err(sqlite_err)?,
                        token_count: 0,
                    };
                    snap.profile = UserProfile {
                        user: user.to_string(),
                        phone: row.get(2).map_err(sqlite_err)?,
                        method: row.get(3).map_err(sqlite_err)?,
                        blocked_at: row.get(4).map_err(sqlite_err)?,
                        blocked_reason: row.get(5).map_err(sqlite_err)?,
                    };
                }
                let id: Option<i64> = row.get(6).map_err(sqlite_err)?;
                if let Some(id) = id {
                    snap.tokens.push(token_record(sealer, row, id)?);
                }
            }
            snap.status.token_count = snap.tokens.len() as u32;
            Ok(snap)
        })
    }

    /// The challenge for this State hash if it exists and has not expired at `now`.
    pub(super) fn challenge(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> Result<Option<PendingChallenge>, StoreError> {
        self.with(|c| {
            let row = c
                .prepare_cached(
                    "SELECT state_hash, user, nas, created_at, expires_at, attempts, context \
                     FROM challenges WHERE state_hash = ?1 AND expires_at > ?2",
                )
                .and_then(|mut st| {
                    st.query_row(rusqlite::params![state_hash, now], |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, String>(6)?,
                        ))
                    })
                    .optional()
                })
                .map_err(sqlite_err)?;
            row.map(
                |(state_hash, user, nas, created_at, expires_at, attempts, context)| {
                    Ok(PendingChallenge {
                        state_hash,
                        user,
                        nas,
                        created_at,
                        expires_at,
                        attempts: to_u32(attempts, "challenges.attempts")?,
                        context,
                    })
                },
            )
            .transpose()
        })
    }
}

/// A token record from columns 6.. of the snapshot row (`id` already read).
fn token_record(sealer: &Sealer, row: &Row<'_>, id: i64) -> Result<TokenRecord, StoreError> {
    let get_err = sqlite_err;
    let serial: String = row.get(7).map_err(get_err)?;
    let kind: String = row.get(9).map_err(get_err)?;
    let algorithm: String = row.get(10).map_err(get_err)?;
    let sealed: Vec<u8> = row.get(17).map_err(get_err)?;
    let resync_counter: Option<i64> = row.get(23).map_err(get_err)?;
    let resync_at: Option<i64> = row.get(24).map_err(get_err)?;
    let resync = match (resync_counter, resync_at) {
        (Some(c), Some(at)) => Some((to_u64(c, "tokens.resync_counter")?, at)),
        _ => None,
    };
    let token = Token {
        id,
        user: row.get(8).map_err(get_err)?,
        kind: token_kind(&serial, &kind)?,
        algorithm: token_algorithm(&serial, &algorithm)?,
        digits: to_u32(row.get(11).map_err(get_err)?, "tokens.digits")?,
        period: to_u32(row.get(12).map_err(get_err)?, "tokens.period")?,
        counter: to_u64(row.get(13).map_err(get_err)?, "tokens.counter")?,
        last_step: row.get(14).map_err(get_err)?,
        enabled: row.get(15).map_err(get_err)?,
        created_at: row.get(16).map_err(get_err)?,
        secret: open_seed(sealer, &serial, &sealed)?,
        serial,
    };
    Ok(TokenRecord {
        extra: TokenExtra {
            manufacturer: row.get(18).map_err(get_err)?,
            model: row.get(19).map_err(get_err)?,
            valid_from: row.get(20).map_err(get_err)?,
            valid_until: row.get(21).map_err(get_err)?,
            drift: row.get(22).map_err(get_err)?,
            resync,
        },
        token,
    })
}
