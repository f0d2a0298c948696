//! `config check --connect`'s look at the SQLite file itself: SQLite's `quick_check`. A
//! damaged database opens, passes the key check and answers `/health`, then fails logins
//! and commands one by one ("database disk image is malformed"); the check is where an
//! admin who has just restored one asks whether it is sound. Only there: it reads the whole
//! file, which a start should not wait for.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// At most this many problems are listed: the first says enough.
const SHOWN: u32 = 3;

/// What is wrong with the SQLite database at `path`, `None` when its check is clean.
pub(super) async fn damage(path: &Path) -> Option<String> {
    let at = path.to_path_buf();
    let found = tokio::task::spawn_blocking(move || quick_check(&at)).await;
    let said = match found {
        Ok(Ok(None)) => return None,
        Ok(Ok(Some(problems))) => format!("SQLite's quick_check finds it damaged: {problems}"),
        Ok(Err(e)) => format!("SQLite's quick_check could not run: {e}"),
        Err(e) => format!("SQLite's quick_check did not finish: {e}"),
    };
    Some(format!(
        "database {}: {said}; logins and commands would fail on it: restore it from a backup \
         (docs/operations.md)",
        path.display()
    ))
}

/// `PRAGMA quick_check`'s problems joined, `None` for its "ok". Read-only, beside the
/// store's own connections (a WAL database is read through its -wal and -shm files).
fn quick_check(path: &Path) -> rusqlite::Result<Option<String>> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(crate::store::sqlite::BUSY_TIMEOUT)?;
    let mut stmt = conn.prepare(&format!("PRAGMA quick_check({SHOWN})"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows != ["ok"]).then(|| rows.join("; ")))
}
