//! "A radmfa is serving this SQLite database": a shared flock(2) on `<database>.serving`,
//! held by `radmfa serve` for as long as it runs, and taken exclusively by
//! `store migrate-to-postgres` for its copy. The copy is one snapshot: what a server still
//! serving the file wrote after it would be lost at the cutover (an HOTP counter moved
//! back lets used codes work again, a revocation is undone, audit records vanish), so the
//! migration refuses while the lock is held, and a server does not start during a copy.
//! A file of its own beside the database: not the database (SQLite's fcntl locks on it go
//! when any descriptor of it closes) nor its directory (held while a store opens).
//!
//! One `radmfa serve` per database, too: the SQLite store is one node's. A second server
//! on the same file (a copy of the config with other ports) split the lockout's
//! serialisation and the duplicate cache between two processes, without a word. Each server
//! also holds a write lock on the lock file's first byte, an open file description lock
//! (fcntl(2) `F_OFD_SETLK`): it conflicts with another server's only, never with the flock
//! above that admin commands share with the servers, and, unlike a classic fcntl lock,
//! closing another descriptor of the file does not drop it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Held while it lives (for a server, with its one-server lock: see the top of the file).
pub struct SqliteLock(
    #[allow(dead_code)] Flock<File>,
    #[allow(dead_code)] Option<File>,
);

/// Beside the database as the filesystem has it (symbolic links and `..` resolved): two
/// configs reaching one file by different paths must meet on one lock. A link to a file
/// not made yet (a first start) is followed too, to where SQLite will make it.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = followed(db).into_os_string();
    name.push(".serving");
    PathBuf::from(name)
}

/// `db` with its symbolic links followed (up to 16), as SQLite follows them to put its
/// `-wal` and `-shm` beside the real file; a target not there yet is spelled with its
/// directory resolved.
pub fn followed(db: &Path) -> PathBuf {
    let mut p = db.to_path_buf();
    for _ in 0..16 {
        if let Ok(real) = std::fs::canonicalize(&p) {
            p = real;
            break;
        }
        let Ok(target) = std::fs::read_link(&p) else {
            break; // not there yet, and no link
        };
        p = match p.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    if !p.exists() {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let (Ok(dir), Some(name)) = (std::fs::canonicalize(dir), p.file_name()) {
            p = dir.join(name);
        }
    }
    p
}

/// The lock file, made if missing. Made by root (an admin's migration, a server run by
/// hand) it is given to the database's owner, as SQLite gives its -wal and -shm files: a
/// root-owned 0600 file would keep the service user's server from starting. One it cannot
/// write is opened to read (flock needs no more).
fn open(db: &Path) -> io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let path = lock_path(db);
    let made = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    match made {
        Ok(file) => {
            if nix::unistd::geteuid().is_root() {
                let owner = std::fs::metadata(db)
                    .or_else(|_| std::fs::metadata(path.parent().unwrap_or(Path::new("."))));
                if let Ok(m) = owner {
                    std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()))?;
                }
            }
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => std::fs::File::open(&path),
        Err(e) => Err(e),
    }
}

fn lock(db: &Path, how: FlockArg, held: &str) -> io::Result<SqliteLock> {
    // A first start: the directory the store is about to be made in.
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::app::create_dirs(dir)?;
    }
    let path = lock_path(db);
    let file =
        open(db).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Flock::lock(file, how)
        .map(|flock| SqliteLock(flock, None))
        .map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                io::Error::new(io::ErrorKind::WouldBlock, held.to_string())
            } else {
                io::Error::other(format!("{}: {errno}", path.display()))
            }
        })
}

/// For `radmfa serve`: refused while a migration copies the database, and while another
/// `radmfa serve` serves it.
pub fn serving(db: &Path) -> io::Result<SqliteLock> {
    let SqliteLock(shared, _) = lock(
        db,
        FlockArg::LockSharedNonblock,
        "`radmfa store migrate-to-postgres` is copying this database; start radmfa on the \
         PostgreSQL store once it is done",
    )?;
    Ok(SqliteLock(shared, Some(only_server(db)?)))
}

/// The one-server lock, on a descriptor of its own (the flock's may be open to read only,
/// and a write lock needs one open to write).
#[cfg(target_os = "linux")]
fn only_server(db: &Path) -> io::Result<File> {
    let path = lock_path(db);
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let file = writable(&path).map_err(named)?;
    match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_SETLK(&byte_lock(0))) {
        Ok(_) => Ok(file),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "another `radmfa serve` is serving this database (check `ps -C radmfa -o \
             pid,args` for its --config). A SQLite store serves one node: stop the other \
             server, give this one a store.path of its own, or share a PostgreSQL store \
             between nodes (docs/ha.md)",
        )),
        Err(errno) => Err(named(errno.into())),
    }
}

/// The lock file opened to write, for an open file description lock.
#[cfg(target_os = "linux")]
fn writable(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}

/// An open file description write lock on byte `at` of the lock file: 0 is the
/// one-server lock, 1 `token import`'s turn.
#[cfg(target_os = "linux")]
fn byte_lock(at: libc::off_t) -> libc::flock {
    libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: at,
        l_len: 1,
        l_pid: 0,
    }
}

/// `token import`'s turn on this database, held from its read of the inventory to its
/// commit: an open file description write lock on the lock file's second byte (the first
/// is the one-server lock's), so imports on this host run one at a time and each checks the
/// file against what the one before it stored. Waits (blocking) for an import under way,
/// saying so first. Checked at the write too (see `InventorySeen`), that missed a seed
/// another import gave an existing serial (review).
#[cfg(target_os = "linux")]
pub fn importing(db: &Path) -> io::Result<File> {
    let path = lock_path(db);
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    // The file made as `lock` makes it (owner, mode); then a descriptor of its own to
    // write-lock, as `only_server` takes one.
    drop(open(db).map_err(named)?);
    let file = writable(&path).map_err(named)?;
    let second_byte = byte_lock(1);
    match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_SETLK(&second_byte)) {
        Ok(_) => return Ok(file),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => {
            eprintln!("waiting for another token import on this store to finish");
        }
        Err(errno) => return Err(named(errno.into())),
    }
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_SETLKW(&second_byte))
        .map_err(|errno| named(errno.into()))?;
    Ok(file)
}

#[cfg(not(target_os = "linux"))]
pub fn importing(db: &Path) -> io::Result<File> {
    File::open(lock_path(db))
}

#[cfg(not(target_os = "linux"))]
fn only_server(db: &Path) -> io::Result<File> {
    File::open(lock_path(db))
}

/// For an admin command (`user delete`, `token disable`, ...): refused during a copy, whose
/// snapshot would not hold the change. An offboarding script's revocation, reported done,
/// was undone at the cutover.
pub fn command(db: &Path) -> io::Result<SqliteLock> {
    lock(
        db,
        FlockArg::LockSharedNonblock,
        "`radmfa store migrate-to-postgres` is copying this database, so no command uses \
         it meanwhile (a change made now would be lost at the cutover, and what a report \
         reads now is about to move); once it is done, run the command with the config \
         that names the PostgreSQL store",
    )
}

/// For `store migrate-to-postgres`: refused while a radmfa serves the database or an admin
/// command runs against it.
pub fn migrating(db: &Path) -> io::Result<SqliteLock> {
    lock(
        db,
        FlockArg::LockExclusiveNonblock,
        "radmfa is serving this database, or an admin command (such as `radmfa audit \
         --follow`) is using it: stop it first (`systemctl stop radmfa`), or what it writes \
         after the copy is lost at the cutover",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_lock_keeps_a_migration_out_and_the_other_way_round() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        let serve = serving(&db).unwrap();
        let command = command(&db).unwrap();
        let refused = migrating(&db).err().expect("refused while served");
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        assert!(refused.to_string().contains("stop it first"), "{refused}");
        drop((serve, command));
        let copy = migrating(&db).unwrap();
        let refused = serving(&db).err().expect("refused while copied");
        assert!(refused.to_string().contains("is copying"), "{refused}");
        drop(copy);
        serving(&db).unwrap();
    }

    /// One server per database: a second is refused and told why, while admin commands
    /// go on beside the first; once the first is gone, another may serve. (Two locks of one
    /// process conflict as two processes' do: each is its own open file description.)
    #[test]
    fn a_second_server_is_refused_and_commands_still_run_beside_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        let first = serving(&db).unwrap();
        let refused = serving(&db).err().expect("a second server refused");
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        assert!(
            refused
                .to_string()
                .contains("another `radmfa serve` is serving this database"),
            "{refused}"
        );
        let commands = (command(&db).unwrap(), command(&db).unwrap());
        drop(first);
        let _second = serving(&db).unwrap();
        drop(commands);
    }

    /// The same database by another path (a symbolic link to the file, elsewhere) is one
    /// lock: the lock file goes beside the file itself, not beside the link.
    #[test]
    fn another_path_to_the_database_meets_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("state");
        let other = dir.path().join("other");
        std::fs::create_dir(&real).unwrap();
        std::fs::create_dir(&other).unwrap();
        std::fs::write(real.join("radmfa.db"), b"").unwrap();
        std::os::unix::fs::symlink(real.join("radmfa.db"), other.join("radmfa.db")).unwrap();
        let _serve = serving(&real.join("radmfa.db")).unwrap();
        assert!(migrating(&other.join("radmfa.db")).is_err());
        assert!(migrating(&real.join("../state/./radmfa.db")).is_err());
    }

    /// A link to a database not made yet (a first start) locks where the file will be.
    #[test]
    fn a_link_to_a_database_not_made_yet_locks_beside_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let (real, other) = (dir.path().join("data"), dir.path().join("state"));
        std::fs::create_dir(&real).unwrap();
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink("../data/radmfa.db", other.join("radmfa.db")).unwrap();
        let _serve = serving(&other.join("radmfa.db")).unwrap();
        std::fs::write(real.join("radmfa.db"), b"").unwrap();
        assert!(migrating(&real.join("radmfa.db")).is_err());
        assert!(real.join("radmfa.db.serving").exists());
    }
}
