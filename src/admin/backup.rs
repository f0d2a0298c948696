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

/// What `to` is of the store's own files (the database at `db`, its `-wal`, `-shm` and
/// `-journal`, the serving lock, the moved mark, the key file), if it is one. The `-wal` is
/// empty or absent, so it passed as a new file: the backup went into it, was reported done
/// and audited, and SQLite then took the file over as the live WAL or deleted it.
pub fn own_file(db: &Path, key_file: &Path, to: &Path) -> Option<&'static str> {
    // Compared as absolute paths with the directory resolved (a relative name, a link to
    // the state directory); the file itself may not exist yet.
    let resolved = |p: &Path| {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        match (p.parent(), p.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or(p.clone()),
            _ => p,
        }
    };
    let to = resolved(to);
    if to == resolved(key_file) || to == crate::store::serving_lock::followed(key_file) {
        return Some("the store's seed key file");
    }
    // Both spellings of a store.path that is a symbolic link: SQLite puts the -wal beside
    // the real file, and the lock and the mark go there too.
    let spellings = [resolved(db), crate::store::serving_lock::followed(db)];
    let named = |suffix: &str| {
        spellings.iter().any(|db| {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            name == to.as_os_str()
        })
    };
    [
        ("", "the store's database itself"),
        ("-wal", "the store's write-ahead log (its -wal file)"),
        ("-shm", "the store's shared-memory file (its -shm file)"),
        ("-journal", "the store's journal (its -journal file)"),
        (".serving", "the store's serving lock"),
        (
            ".moved-to-postgres",
            "the mark of a store moved to PostgreSQL",
        ),
    ]
    .into_iter()
    .find(|(suffix, _)| named(suffix))
    .map(|(_, what)| what)
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
    // A directory that is not there: said as such ("No such file or directory" read as if
    // the backup file were what was missing).
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(super::Refused(format!(
                "the directory {} does not exist; create it first, or give a backup file in \
                 an existing one",
                dir.display()
            ))
            .into());
        }
    }
    crate::store::seal::create_private(to)
        .map(|_| ())
        .with_context(|| format!("creating {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::own_file;
    use std::path::Path;

    /// The store's own files are named as such, whatever the spelling of their directory;
    /// other names beside the store (radmfa.db.bak) are backups like any.
    #[test]
    fn the_stores_own_files_are_no_backup_names() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        let key = dir.path().join("radmfa.key");
        let dotted = dir.path().join(".").join("radmfa.db-wal");
        assert_eq!(
            own_file(&db, &key, &dotted),
            Some("the store's write-ahead log (its -wal file)")
        );
        for (name, said) in [
            ("radmfa.db", "database itself"),
            ("radmfa.db-shm", "shared-memory"),
            ("radmfa.db.serving", "serving lock"),
            ("radmfa.db.moved-to-postgres", "moved to PostgreSQL"),
            ("radmfa.key", "seed key file"),
        ] {
            let what = own_file(&db, &key, &dir.path().join(name)).unwrap_or_default();
            assert!(what.contains(said), "{name}: {what:?}");
        }
        for name in ["radmfa.db.bak", "radmfa-2026-12-07.db", "radmfa.db-wal.bak"] {
            assert_eq!(own_file(&db, &key, &dir.path().join(name)), None, "{name}");
        }
        assert_eq!(
            own_file(&db, &key, Path::new("/elsewhere/radmfa.db-wal")),
            None
        );
        // store.path a symbolic link: the real file's companions are the store's too.
        #[cfg(unix)]
        {
            let real = dir.path().join("real");
            std::fs::create_dir(&real).unwrap();
            std::fs::write(real.join("radmfa.db"), b"x").unwrap();
            let link = dir.path().join("link.db");
            std::os::unix::fs::symlink(real.join("radmfa.db"), &link).unwrap();
            for name in ["radmfa.db-wal", "radmfa.db.serving"] {
                assert!(own_file(&link, &key, &real.join(name)).is_some(), "{name}");
            }
            assert!(own_file(&link, &key, &dir.path().join("link.db-wal")).is_some());
        }
    }
}
