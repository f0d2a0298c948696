//! The SQLite file a running server opened, looked at again every 10 seconds.
//! Deleted or replaced under the server (a restore done without stopping it, a cleanup
//! script, a wrong `rm`), the file it writes is no longer the one at `store.path`: logins go
//! on, but what they change (used codes, lockouts, the audit) goes to a file nobody can
//! open and is lost at the next restart, and the admin commands act on the new file, which
//! the server never reads. Nothing said so before.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the path is looked at: a `stat`, nothing read.
const EVERY: Duration = Duration::from_secs(10);

/// How long apart the error is said again while the state lasts.
const SAY_AGAIN_AFTER: Duration = Duration::from_secs(15 * 60);

/// Looks at `path` every [`EVERY`] until `stop` (see the module's comment). Called right
/// after the store opened the file, which is taken as it is then, not when the task first
/// runs: a file deleted in between was never watched.
pub fn watch(
    path: PathBuf,
    stop: tokio_util::sync::CancellationToken,
) -> impl std::future::Future<Output = ()> {
    let mut watch = FileWatch::new(&path);
    async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => watch.check(),
            }
        }
    }
}

struct FileWatch {
    path: PathBuf,
    /// Device and inode of the file opened; `None` when they could not be read then (no
    /// check is made).
    opened: Option<(u64, u64)>,
    /// When the state was last said.
    said_at: Instant,
    /// The last state said (`None`: the file is the one opened).
    said: Option<Changed>,
}

/// What became of the opened file's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changed {
    Deleted,
    Replaced,
}

fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

impl FileWatch {
    /// The file at `path` now: made right after the store opened it.
    fn new(path: &Path) -> FileWatch {
        FileWatch {
            path: path.to_path_buf(),
            opened: identity(path).ok(),
            said_at: Instant::now(),
            said: None,
        }
    }

    /// What became of the path since it was opened: `Some(None)` while it is still the
    /// file opened, `None` when it cannot be told (a permission error says nothing of the
    /// file, and must not read as "back": review).
    fn changed(&self) -> Option<Option<Changed>> {
        let opened = self.opened?;
        match identity(&self.path) {
            Ok(now) if now == opened => Some(None),
            Ok(_) => Some(Some(Changed::Replaced)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Some(Changed::Deleted)),
            Err(_) => None,
        }
    }

    /// An error line when the file was deleted or replaced, said again every
    /// [`SAY_AGAIN_AFTER`] while it lasts, and a line when it is back.
    fn check(&mut self) {
        // Unknown: what was said last stands.
        let Some(now) = self.changed() else {
            return;
        };
        if now == self.said && (now.is_none() || self.said_at.elapsed() < SAY_AGAIN_AFTER) {
            return;
        }
        self.said_at = Instant::now();
        self.said = now;
        let path = self.path.display();
        match now {
            Some(Changed::Deleted) => tracing::error!(
                path = %path,
                "the store's database file was deleted while radmfa runs: logins go on in \
                 the deleted file (or fail, if its directory went too), and what they \
                 change (used codes, lockouts, the audit) is lost when radmfa stops. Put \
                 the file back, or restore it, and restart radmfa (stop it before a \
                 restore)"
            ),
            Some(Changed::Replaced) => tracing::error!(
                path = %path,
                "the store's database file was replaced while radmfa runs (a restore \
                 without a stop?): radmfa still serves the file it opened, which is no \
                 longer at this path; what logins change there is lost when it stops, and \
                 admin commands act on the new file, which it does not read. Restart \
                 radmfa to serve the new file"
            ),
            None => tracing::info!(
                path = %path,
                "the store's database file is the one radmfa opened again"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_file_is_told_from_the_one_opened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        std::fs::write(&db, b"x").unwrap();
        let watch = FileWatch::new(&db);
        assert_eq!(watch.changed(), Some(None));
        // Written in place: the same file.
        std::fs::write(&db, b"y").unwrap();
        assert_eq!(watch.changed(), Some(None));
        // Renamed away and another put there (what a restore by `cp` + `mv` does).
        let away = dir.path().join("old.db");
        std::fs::rename(&db, &away).unwrap();
        assert_eq!(watch.changed(), Some(Some(Changed::Deleted)));
        std::fs::write(&db, b"z").unwrap();
        assert_eq!(watch.changed(), Some(Some(Changed::Replaced)));
        // Moved back: the one opened again.
        std::fs::rename(&away, &db).unwrap();
        assert_eq!(watch.changed(), Some(None));
        // What cannot be told (here the directory turned into a file: ENOTDIR; a permission
        // error as a service account is the same) is no answer, not "the one opened".
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("radmfa.db"), b"x").unwrap();
        let mut watch = FileWatch::new(&sub.join("radmfa.db"));
        std::fs::rename(&sub, dir.path().join("sub.away")).unwrap();
        assert_eq!(watch.changed(), Some(Some(Changed::Deleted)));
        watch.check();
        std::fs::write(&sub, b"not a directory").unwrap();
        assert_eq!(watch.changed(), None);
        watch.check();
        assert_eq!(
            watch.said,
            Some(Changed::Deleted),
            "the deletion said stands"
        );
    }
}
