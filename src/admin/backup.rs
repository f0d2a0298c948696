//! `radmfa db backup FILE`: a consistent copy of the SQLite store, taken while radmfa runs.
//!
//! Copying `radmfa.db` with `cp` is not a backup. In WAL mode the latest commits live in
//! `radmfa.db-wal` until a checkpoint moves them into the main file — with radmfa running,
//! often everything since the last checkpoint, and on a young deployment everything: its
//! `radmfa.db` can be a 4 KiB file without a single table. A copy taken during a write can
//! also be torn. `VACUUM INTO` writes one read snapshot (WAL included) into a new, compact
//! file, without stopping the server; the copy is then checked and synced before we say
//! it is done.

use std::path::Path;

use anyhow::{bail, Context};
use rusqlite::{Connection, OpenFlags};

/// What the backup holds, for the admin's confirmation line.
pub struct Summary {
    pub tokens: i64,
    pub audit: i64,
    /// When the copy began: its snapshot holds what was committed before it. A restore
    /// lists what changed since from the live store's audit (`--since`), and the copy's
    /// end (the file's natural modification time) was seconds late on a large store: the
    /// changes made during the copy were in neither.
    pub taken: std::time::SystemTime,
}

/// Copies the database at `from` into the new file `to` (mode 0600: it holds sealed seeds,
/// phone numbers and the audit trail). Refuses to overwrite anything but an empty file.
pub fn sqlite_backup(from: &Path, to: &Path) -> anyhow::Result<Summary> {
    create_private(to)?;
    match copy_and_check(from, to) {
        Ok(s) => Ok(s),
        Err(e) => {
            let _ = std::fs::remove_file(to);
            Err(e)
        }
    }
}

fn copy_and_check(from: &Path, to: &Path) -> anyhow::Result<Summary> {
    // Read-write without CREATE: a wrong path fails instead of backing up a new empty
    // database, and the source's -shm can be set up if radmfa is not running.
    let src = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", from.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let target = to
        .to_str()
        .context("the backup file's name is not valid UTF-8")?;
    // Before the statement, so never later than its snapshot: a --since from it may list
    // a change the backup holds already, never miss one it does not.
    let taken = std::time::SystemTime::now();
    src.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("copying {} into {}", from.display(), to.display()))?;
    drop(src);

    let copy = Connection::open_with_flags(to, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the backup {}", to.display()))?;
    let check: String = copy.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("the backup {} failed its check: {check}", to.display());
    }
    let count = |table: &str| -> anyhow::Result<i64> {
        Ok(copy.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
    };
    let summary = Summary {
        tokens: count("tokens")?,
        audit: count("audit")?,
        taken,
    };
    drop(copy);
    // The file's modification time is the snapshot's (the restore's `--since $(stat -c %Y
    // FILE)`), then synced with it: VACUUM INTO does not sync its output, and a backup is
    // only one once it is on disk.
    std::fs::File::options()
        .write(true)
        .open(to)
        .and_then(|f| {
            f.set_modified(taken)?;
            f.sync_all()
        })
        .with_context(|| format!("syncing {}", to.display()))?;
    // And its name: a new file's directory entry is not on disk until its directory is. A
    // directory that cannot be opened to read (mode -wx) or synced (some filesystems
    // refuse) costs that only, not the checked backup: said, not fatal.
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        eprintln!(
            "warning: {}: the directory could not be synced ({e}); the backup is written, \
             but a power cut in the next seconds could lose its name",
            dir.display()
        );
    }
    Ok(summary)
}

/// A new file with mode 0600, or an existing empty one of ours (`mktemp`'s; VACUUM INTO
/// also accepts it). Not a symbolic link, and not someone else's: a file another user made
/// in /tmp for us to fill would stay theirs, seeds and all.
fn create_private(to: &Path) -> anyhow::Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(to) {
        if m.len() > 0 || !m.is_file() {
            return Err(super::Refused(format!(
                "{} exists; give a new file name (a backup never overwrites one)",
                to.display()
            ))
            .into());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if m.uid() != me {
                return Err(super::Refused(format!(
                    "{} exists and belongs to another user (uid {}); give a new file name",
                    to.display(),
                    m.uid()
                ))
                .into());
            }
        }
        // Someone's empty placeholder: the copy in it gets the same mode as a new file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} private", to.display()))?;
        }
        return Ok(());
    }
    crate::store::seal::create_private(to)
        .map(|_| ())
        .with_context(|| format!("creating {}", to.display()))
}
