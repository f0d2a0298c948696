//! Telling that a file changed on disk without reading it. Used where a file named in the
//! config is picked up again when replaced in place (RadSec's certificates and CRL on each
//! new connection, `[ldap] ca_file` on SIGHUP).
//!
//! Modification time and length alone miss two changes an admin makes: `chmod o-w` on a
//! file refused for being writable by everyone (neither moves), and a replacement copied
//! with its time kept (`cp -p`, `rsync -t`, `install -p`) that happens to be as long. So the
//! stamp also holds the inode and the status-change time, which every write, rename onto
//! the path and `chmod` moves.

use std::path::Path;
use std::time::SystemTime;

/// What is compared of a file; `None` if it cannot be read.
pub type FileStamp = Option<Stamp>;

/// A file's modification time and length, and on Unix its device, inode, mode and
/// status-change time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    modified: SystemTime,
    len: u64,
    #[cfg(unix)]
    unix: (u64, u64, u32, i64, i64),
}

/// The stamp of the file at `path` now.
pub fn stamp(path: &Path) -> FileStamp {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok()?,
        len: m.len(),
        #[cfg(unix)]
        unix: {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino(), m.mode(), m.ctime(), m.ctime_nsec())
        },
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_chmod_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let before = stamp(&p);
        assert!(before.is_some());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_ne!(stamp(&p), before);
    }

    #[test]
    fn a_same_length_copy_with_its_time_kept_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("crl.pem");
        let q = dir.path().join("new.pem");
        std::fs::write(&p, "old").unwrap();
        std::fs::write(&q, "new").unwrap();
        let t = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(&q)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let before = stamp(&p);
        std::fs::rename(&q, &p).unwrap();
        assert_ne!(stamp(&p), before);
    }

    #[test]
    fn an_untouched_file_keeps_its_stamp_and_a_missing_one_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "x").unwrap();
        assert_eq!(stamp(&p), stamp(&p));
        assert_eq!(stamp(&dir.path().join("gone")), None);
    }
}
