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
//!
//! A wait in the kernel is not bounded by it: a reader writes its mark into the WAL index
//! (`-shm`, a mapped file), and on a file system frozen for a VM snapshot (`fsfreeze`, a
//! quiesced snapshot) or stalled on its disk that write waits for the thaw. With every
//! tokio worker inside such a read, nothing else ran: no refusal at a request's deadline,
//! no Status-Server, no stop (red team: a server dead for a 10-minute freeze). So the reads
//! take turns ([`Readers::turn`]) and leave one worker free: the others wait for their
//! turn asynchronously, where their deadlines still run. A free worker is not enough by
//! itself: one asleep, waiting to be told of work, stayed asleep, since the worker that
//! would poll the sockets and timers was the one stuck. So while a read is under way, a
//! thread of ours hands the runtime an empty task every 250 ms, which wakes the free
//! worker; idle again, it waits on the sockets and timers itself.
//!
//! With one worker (a 1-core host, `TOKIO_WORKER_THREADS=1`) there is none to leave free:
//! there a read hands the worker's duties to another thread while it runs
//! (`block_in_place`), which costs a thread hand-over per read, so only there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use super::columns::{open_seed, open_seed_or_reason, to_u32, to_u64, token_algorithm, token_kind};
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
    /// Reads at once: one fewer than the runtime's workers (one at least), set at the first;
    /// and whether a read hands its worker's duties over (a runtime of one worker).
    turns: OnceLock<(tokio::sync::Semaphore, bool)>,
    /// Reads begun and ended, for the thread that wakes a free worker (see the module's
    /// comment).
    begun: std::sync::Arc<AtomicU64>,
    ended: std::sync::Arc<AtomicU64>,
}

/// Held while a read runs on this thread: its turn, and its count for the nudges.
pub(super) struct Turn<'a> {
    _permit: Option<tokio::sync::SemaphorePermit<'a>>,
    ended: &'a AtomicU64,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// How often a read under way wakes a free worker.
const NUDGE_EVERY: Duration = Duration::from_millis(250);

/// Wakes one of `runtime`'s workers while a read it counts has been under way since the
/// last look; ends with the readers (a spawn on a runtime shut down is dropped, no harm).
fn nudge_while_reading(
    runtime: tokio::runtime::Handle,
    begun: std::sync::Weak<AtomicU64>,
    ended: std::sync::Weak<AtomicU64>,
) {
    let _ = std::thread::Builder::new()
        .name("radmfa-nudge".into())
        .spawn(move || {
            let mut last_begun = u64::MAX;
            loop {
                std::thread::sleep(NUDGE_EVERY);
                let (Some(begun), Some(ended)) = (begun.upgrade(), ended.upgrade()) else {
                    return;
                };
                let b = begun.load(Ordering::Relaxed);
                // The same read under way as a look ago (none begun since, not all ended).
                if b != ended.load(Ordering::Relaxed) && b == last_begun {
                    // An empty task: the free worker runs it, then waits on the driver.
                    drop(runtime.spawn(async {}));
                }
                last_begun = b;
            }
        });
}

impl Readers {
    /// The database file the readers open.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn new(path: &Path) -> Self {
        Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            turns: OnceLock::new(),
            begun: Default::default(),
            ended: Default::default(),
        }
    }

    /// Waits for a turn to read on this thread, held until dropped (see the module's
    /// comment). A current-thread runtime (the admin commands, tests) has one turn and
    /// reads in place: nothing else of its serves requests.
    pub(super) async fn turn(&self) -> Turn<'_> {
        let (turns, _) = self.turns.get_or_init(|| {
            let runtime = tokio::runtime::Handle::try_current();
            let workers = runtime.as_ref().map_or(1, |h| h.metrics().num_workers());
            let multi = runtime
                .as_ref()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if let (Ok(h), true) = (runtime, workers > 1) {
                nudge_while_reading(
                    h,
                    std::sync::Arc::downgrade(&self.begun),
                    std::sync::Arc::downgrade(&self.ended),
                );
            }
            (
                tokio::sync::Semaphore::new(workers.saturating_sub(1).max(1)),
                multi && workers == 1,
            )
        });
        // Never closed: an error cannot come, and a read without a turn is no harm.
        let permit = turns.acquire().await.ok();
        self.begun.fetch_add(1, Ordering::Relaxed);
        Turn {
            _permit: permit,
            ended: &self.ended,
        }
    }

    /// Closes the idle connections (at shutdown: see [`super::Store::close`]).
    pub(super) fn close_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Runs `f` on an idle connection (or a new one) and returns the connection afterwards;
    /// in a turn ([`Self::turn`]), on a runtime of one worker with that worker's duties (the
    /// sockets, the timers, the other tasks) handed to another thread meanwhile, so that a
    /// read stuck in the kernel does not hold the server.
    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.turns.get().is_some_and(|(_, hand_off)| *hand_off) {
            tokio::task::block_in_place(|| self.with_connection(f))
        } else {
            self.with_connection(f)
        }
    }

    fn with_connection<T>(
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
                // Every commit of the writer empties a reader's page cache at its next read
                // (WAL), so a big one buys nothing; the OS keeps the file's pages anyway.
                c.execute_batch("PRAGMA cache_size = -256")
                    .map_err(sqlite_err)?;
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
            let mut st = c.prepare_cached(&SNAPSHOT_SQL).map_err(sqlite_err)?;
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
                        bypass_until: row.get(6).map_err(sqlite_err)?,
                    };
                }
                let id: Option<i64> = row.get(7).map_err(sqlite_err)?;
                if id.is_some() {
                    snap.tokens
                        .push(token_record(sealer, row, 7, Seed::MustOpen)?);
                }
            }
            snap.status.token_count = snap.tokens.len() as u32;
            Ok(snap)
        })
    }

    /// Token records: `SELECT {RECORD_COLUMNS} FROM tokens {rest}` with `params`.
    pub(super) fn token_records<P: rusqlite::Params>(
        &self,
        sealer: &Sealer,
        rest: &str,
        params: P,
        seed: Seed,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.with(|c| {
            let mut st = c
                .prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM tokens {rest}"))
                .map_err(sqlite_err)?;
            let mut rows = st.query(params).map_err(sqlite_err)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite_err)? {
                out.push(token_record(sealer, row, 0, seed)?);
            }
            Ok(out)
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

    /// [`super::Store::has_open_challenge`]: the `challenges_user` index finds the user's
    /// few rows.
    pub(super) fn has_open_challenge(
        &self,
        user: &str,
        nas: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM challenges \
                 WHERE user = ?1 AND nas = ?2 AND expires_at > ?3)",
            )
            .and_then(|mut st| st.query_row(rusqlite::params![user, nas, now], |r| r.get(0)))
            .map_err(sqlite_err)
        })
    }
}

/// The token columns every token read selects, in the order [`token_record`] reads them.
pub(super) const RECORD_COLUMNS: &str = "id, serial, user, kind, algorithm, digits, period, \
     counter, last_step, enabled, created_at, secret, manufacturer, model, valid_from, \
     valid_until, drift, resync_counter, resync_at, origin";

/// The snapshot query: lockout and profile columns, then [`RECORD_COLUMNS`] of `tokens`.
static SNAPSHOT_SQL: LazyLock<String> = LazyLock::new(|| {
    let token_columns: Vec<String> = RECORD_COLUMNS
        .split(',')
        .map(|c| format!("t.{}", c.trim()))
        .collect();
    format!(
        "SELECT s.failures, s.locked_until, \
                p.phone, p.method, p.blocked_at, p.blocked_reason, p.bypass_until, {} \
         FROM (SELECT ?1 AS name) AS u \
         LEFT JOIN user_state s ON s.user = u.name \
         LEFT JOIN user_profile p ON p.user = u.name \
         LEFT JOIN tokens t ON t.user = u.name \
         ORDER BY t.serial",
        token_columns.join(", ")
    )
});

/// What a seed that does not open makes of a token read: an error for logins, a mark on the
/// record for the admin reads ([`open_seed_or_reason`]).
#[derive(Clone, Copy)]
pub(super) enum Seed {
    MustOpen,
    MayFail,
}

/// A token record from [`RECORD_COLUMNS`] starting at column `at` of `row`.
fn token_record(
    sealer: &Sealer,
    row: &Row<'_>,
    at: usize,
    seed: Seed,
) -> Result<TokenRecord, StoreError> {
    let col = |i: usize| at + i;
    let serial: String = row.get(col(1)).map_err(sqlite_err)?;
    let kind: String = row.get(col(3)).map_err(sqlite_err)?;
    let algorithm: String = row.get(col(4)).map_err(sqlite_err)?;
    let sealed: Vec<u8> = row.get(col(11)).map_err(sqlite_err)?;
    let resync_counter: Option<i64> = row.get(col(17)).map_err(sqlite_err)?;
    let resync_at: Option<i64> = row.get(col(18)).map_err(sqlite_err)?;
    let resync = match (resync_counter, resync_at) {
        (Some(c), Some(at)) => Some((to_u64(c, "tokens.resync_counter")?, at)),
        _ => None,
    };
    let (secret, unreadable_seed) = match seed {
        Seed::MustOpen => (open_seed(sealer, &serial, &sealed)?, None),
        Seed::MayFail => open_seed_or_reason(sealer, &serial, &sealed)?,
    };
    let token = Token {
        id: row.get(col(0)).map_err(sqlite_err)?,
        user: row.get(col(2)).map_err(sqlite_err)?,
        kind: token_kind(&serial, &kind)?,
        algorithm: token_algorithm(&serial, &algorithm)?,
        digits: to_u32(row.get(col(5)).map_err(sqlite_err)?, "tokens.digits")?,
        period: to_u32(row.get(col(6)).map_err(sqlite_err)?, "tokens.period")?,
        counter: to_u64(row.get(col(7)).map_err(sqlite_err)?, "tokens.counter")?,
        last_step: row.get(col(8)).map_err(sqlite_err)?,
        enabled: row.get(col(9)).map_err(sqlite_err)?,
        created_at: row.get(col(10)).map_err(sqlite_err)?,
        secret,
        serial,
    };
    Ok(TokenRecord {
        extra: TokenExtra {
            manufacturer: row.get(col(12)).map_err(sqlite_err)?,
            model: row.get(col(13)).map_err(sqlite_err)?,
            valid_from: row.get(col(14)).map_err(sqlite_err)?,
            valid_until: row.get(col(15)).map_err(sqlite_err)?,
            drift: row.get(col(16)).map_err(sqlite_err)?,
            resync,
            enrolled: row.get::<_, String>(col(19)).map_err(sqlite_err)? == "enroll",
            unreadable_seed,
        },
        token,
    })
}
