//! A SQLite store radmfa cannot write is refused when it opens, not at the first login.
//! SQLite opens a database file it may only read read-only without a word, and a directory
//! it cannot create files in fails only when it makes the -wal, -shm or journal file: a
//! server started on a restore copied by root, the chown forgotten, started normally and
//! then refused every login ("attempt to write a readonly database") and wrote no audit
//! record, while `config check --connect` said "store: opened".

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::{AccessFlags, Gid, Uid, User};

/// Who must be able to write the store.
enum Who {
    /// This process, asked with faccessat(2) (its effective ids, groups and ACLs count).
    /// Root may write anything, so an admin command run as root is never refused.
    Me,
    /// The account owning the store's directory, judged by the files' modes: a check run
    /// as root stands in for the service, whose directory the shipped unit's
    /// StateDirectory= gives to its user. The path is the file whose owner it is (the
    /// directory, or the database where the directory is root's), for the message.
    Owner(User, Vec<Gid>, PathBuf),
}

/// The account this process runs as, for a message telling the admin whom to give a file
/// to: its name and uid ("radmfa (uid 998)"), or the uid alone.
pub fn runs_as() -> String {
    account(nix::unistd::geteuid())
}

pub(crate) fn account(uid: Uid) -> String {
    match User::from_uid(uid) {
        Ok(Some(user)) => format!("{} (uid {uid})", user.name),
        _ => format!("uid {uid}"),
    }
}

/// For `serve`: refuses a database at `db` (or the directory it is to be made in) that
/// this process cannot read and write. What is missing is not refused: a first start
/// makes it (and a directory it cannot make says so when it is made).
pub fn refuse_unwritable(db: &Path) -> anyhow::Result<()> {
    refuse(db, &Who::Me)
}

/// For `config check`: [`refuse_unwritable`] (an error), and, run as root (which may write
/// anything), what the account the service presumably runs as would find: a restore
/// copied by root passed a check run as root and failed every login of the service. That
/// account is a guess (the owner of the store's directory, or of the database where the
/// directory is root's), so what it finds is a warning (`Ok(Some(..))`), not a failure: a
/// radmfa that does run as root, on a directory someone else owns, works.
pub fn refuse_unwritable_by_service(db: &Path, key: &Path) -> anyhow::Result<Option<String>> {
    refuse(db, &Who::Me)?;
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    Ok(presumed_service(db)
        .and_then(|owner| {
            refuse(db, &owner)
                .and_then(|()| refuse_unreadable_key(key, &owner))
                .err()
        })
        .map(|e| format!("{e:#} (if radmfa serve runs as root, ignore this)")))
}

fn directory(db: &Path) -> &Path {
    match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The account the service presumably runs as, and its groups: the owner of `db`'s
/// directory (the shipped unit's StateDirectory= gives it to the service's user), else,
/// where that is root's, the owner of the database itself (chowned to the service's user
/// in a directory root made); None where both are root's.
fn presumed_service(db: &Path) -> Option<Who> {
    use std::os::unix::fs::MetadataExt;
    let owner = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.uid())
            .filter(|&u| u != 0)
    };
    let (uid, from) = match owner(directory(db)) {
        Some(uid) => (uid, directory(db)),
        None => (owner(db)?, db),
    };
    let user = User::from_uid(Uid::from_raw(uid)).ok()??;
    let name = std::ffi::CString::new(user.name.clone()).ok()?;
    let groups = nix::unistd::getgrouplist(&name, user.gid).unwrap_or_else(|_| vec![user.gid]);
    Some(Who::Owner(user, groups, from.to_path_buf()))
}

fn refuse(db: &Path, who: &Who) -> anyhow::Result<()> {
    let dir = directory(db);
    refuse_closed_parent("store.path", db, dir, who)?;
    // The database itself a link: resolved on its own, into a directory that must be
    // entered and written as well, since SQLite and the serving lock make their files
    // beside the file the link leads to, not beside the link.
    let target = db
        .is_symlink()
        .then(|| std::fs::canonicalize(db).ok())
        .flatten();
    if target.is_some() {
        refuse_closed_parent("store.path", db, db, who)?;
    }
    let target_dir = target.as_deref().map(|t| directory(t).to_path_buf());
    for dir in std::iter::once(dir.to_path_buf()).chain(target_dir) {
        refuse_unwritable_directory(db, &dir, who)?;
    }
    refuse_files(target.as_deref().unwrap_or(db), who)
}

/// The directory the database's files are made in, not writable by `who`.
fn refuse_unwritable_directory(db: &Path, dir: &Path, who: &Who) -> anyhow::Result<()> {
    if let Some(why) = denied(dir, AccessFlags::W_OK | AccessFlags::X_OK, who) {
        anyhow::bail!(
            "store.path {}: {} cannot create files in the directory {} ({why}); SQLite \
             makes the database's -wal, -shm and journal files there, so every login would \
             fail. Give the directory to that user: chown {} {}",
            db.display(),
            who.described(),
            dir.display(),
            who.chown_name(),
            dir.display()
        );
    }
    Ok(())
}

/// The database, SQLite's files beside it and the serving lock, as `who` must use them.
fn refuse_files(db: &Path, who: &Who) -> anyhow::Result<()> {
    // The database and what SQLite keeps beside it: a -wal or -shm file root's server left
    // behind, root's own, is as fatal as the database.
    for file in beside(db) {
        let Some(why) = denied(&file, AccessFlags::R_OK | AccessFlags::W_OK, who) else {
            continue;
        };
        anyhow::bail!(
            "store.path {}: {} cannot read and write {} ({why}); SQLite would open it \
             read-only or not at all, and every login would fail. Give it to that user: \
             chown {} {}",
            db.display(),
            who.described(),
            file.display(),
            who.chown_name(),
            file.display()
        );
    }
    // The serving lock: opened to read when it is there (flock needs no more). Root's at
    // 0600, the start failed on a bare "Permission denied" naming neither user nor fix.
    let lock = super::serving_lock::lock_path(db);
    if let Some(why) = denied(&lock, AccessFlags::R_OK, who) {
        anyhow::bail!(
            "store.path {}: {} cannot read the serving lock {} ({why}); radmfa takes it to \
             keep a second server off the store. Give it to that user: chown {} {}",
            db.display(),
            who.described(),
            lock.display(),
            who.chown_name(),
            lock.display()
        );
    }
    Ok(())
}

/// For `config check` on a PostgreSQL store, run as root: the seed key as the account the
/// service presumably runs as would find it (the owner of the key's directory, or of the
/// key where that is root's). The HA procedure copies the key to each node, `scp -p` as
/// root leaves it root's, and the service then failed to start after the check passed.
pub fn key_unreadable_by_service(key: &Path) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    presumed_service(key)
        .and_then(|owner| refuse_unreadable_key(key, &owner).err())
        .map(|e| format!("{e:#} (if radmfa serve runs as root, ignore this)"))
}

/// The seed key, readable by `who`: a key copied back by root (`scp -p`, a restore) stays
/// root's at 0600, and the service then failed to start after a check run as root passed.
fn refuse_unreadable_key(key: &Path, who: &Who) -> anyhow::Result<()> {
    refuse_closed_parent("store.key_file", key, key, who)?;
    if let Some(why) = denied(key, AccessFlags::R_OK, who) {
        anyhow::bail!(
            "store.key_file {}: {} cannot read it ({why}); the store cannot be opened \
             without it. Give it to that user, mode 0600: chown {} {}",
            key.display(),
            who.described(),
            who.chown_name(),
            key.display()
        );
    }
    Ok(())
}

/// A directory above `below` (not `below` itself) that the account the service presumably
/// runs as may not enter: everything under it is out of its reach, whatever the files'
/// own modes. A store moved under /root or a 0700 home passed a check run as root, and the
/// service then failed to start. (Run as the service's own account, the checks of the
/// files themselves find this already: the kernel refuses them.)
fn refuse_closed_parent(key: &str, path: &Path, below: &Path, who: &Who) -> anyhow::Result<()> {
    if matches!(who, Who::Me) {
        return Ok(());
    }
    let Ok(written) = std::path::absolute(below) else {
        return Ok(());
    };
    // The path as written, and where its links lead (a /srv/radmfa that links into
    // /root/...): the kernel walks both.
    let resolved = std::fs::canonicalize(below).ok();
    let ancestors = written
        .ancestors()
        .skip(1)
        .chain(resolved.iter().flat_map(|r| r.ancestors().skip(1)));
    for dir in ancestors {
        if let Some(why) = denied(dir, AccessFlags::X_OK, who) {
            anyhow::bail!(
                "{key} {}: {} cannot enter the directory {} above it ({why}), so cannot reach \
                 it at all. Move the store to a directory it may reach (/var/lib/radmfa), or \
                 let it through: chmod o+x {}",
                path.display(),
                who.described(),
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// The database and SQLite's files beside it.
fn beside(db: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["", "-wal", "-shm", "-journal"]
        .into_iter()
        .map(move |suffix| {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        })
}

impl Who {
    /// The subject of the message: who cannot.
    fn described(&self) -> String {
        match self {
            Who::Me => format!("the user radmfa runs as, {},", runs_as()),
            Who::Owner(user, _, from) => format!(
                "the user radmfa serve runs as (presumably {}, the owner of {})",
                account(user.uid),
                from.display()
            ),
        }
    }

    fn chown_name(&self) -> String {
        match self {
            Who::Me => {
                let uid = nix::unistd::geteuid();
                User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map_or_else(|| uid.to_string(), |u| u.name)
            }
            Who::Owner(user, ..) => user.name.clone(),
        }
    }
}

/// Why `who` may not use `path` as `how` asks, with the file's owner and mode; `None` when
/// it may, or when there is nothing there.
fn denied(path: &Path, how: AccessFlags, who: &Who) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let why = match who {
        Who::Me => match nix::unistd::faccessat(
            nix::fcntl::AT_FDCWD,
            path,
            how,
            nix::fcntl::AtFlags::AT_EACCESS,
        ) {
            Ok(()) => return None,
            Err(Errno::EACCES | Errno::EPERM) => "permission denied".to_string(),
            Err(Errno::EROFS) => "a read-only filesystem".to_string(),
            Err(other) => other.desc().to_string(),
        },
        Who::Owner(user, groups, _) if !mode_allows(&meta, how, user, groups) => {
            "permission denied".to_string()
        }
        Who::Owner(..) => return None,
    };
    Some(format!("{why}; {}", owner_and_mode(&meta)))
}

/// Whether `meta`'s mode bits give `user` (in `groups`) what `how` asks (ACLs aside).
fn mode_allows(meta: &std::fs::Metadata, how: AccessFlags, user: &User, groups: &[Gid]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let shift = if meta.uid() == user.uid.as_raw() {
        6
    } else if groups.iter().any(|g| g.as_raw() == meta.gid()) {
        3
    } else {
        0
    };
    let want = how.bits() as u32 & 0o7;
    (meta.mode() >> shift) & want == want
}

/// "owner root, mode 0644".
fn owner_and_mode(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let owner = match User::from_uid(Uid::from_raw(meta.uid())) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {}", meta.uid()),
    };
    format!("owner {owner}, mode {:04o}", meta.mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The service's account, judged by the modes (as a check run as root judges it): a
    /// file of root's it may only read is refused, naming the file and the chown; the same
    /// file given to it, or missing, passes.
    #[test]
    fn a_file_the_service_account_may_only_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        let nobody = User::from_name("nobody")
            .unwrap()
            .expect("a nobody account");
        let uid = nobody.uid;
        let service = Who::Owner(nobody, Vec::new(), dir.path().to_path_buf());
        // The directory is the service's, as StateDirectory= makes it.
        std::os::unix::fs::chown(dir.path(), Some(uid.as_raw()), None).unwrap();
        refuse(&db, &service).unwrap();
        std::fs::write(&db, b"").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::chown(&db, Some(0), Some(0)).unwrap();
        let refused = refuse(&db, &service).unwrap_err().to_string();
        for said in ["cannot read and write", "mode 0644", "chown nobody"] {
            assert!(refused.contains(said), "{said:?} in {refused}");
        }
        std::os::unix::fs::chown(&db, Some(uid.as_raw()), None).unwrap();
        refuse(&db, &service).unwrap();
        // A -wal file root's server left behind is refused as the database is.
        let wal = dir.path().join("radmfa.db-wal");
        std::fs::write(&wal, b"").unwrap();
        let refused = refuse(&db, &service).unwrap_err().to_string();
        assert!(refused.contains("radmfa.db-wal"), "{refused}");
    }

    /// The serving lock and the seed key, root's at 0600 (a key copied back with `scp -p`
    /// by root): refused for the service's account, naming the file and the chown. A check
    /// run as root passed both, and the service then failed to start.
    #[test]
    fn a_lock_or_key_the_service_account_cannot_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        let key = dir.path().join("radmfa.key");
        let nobody = User::from_name("nobody")
            .unwrap()
            .expect("a nobody account");
        let uid = nobody.uid.as_raw();
        let service = Who::Owner(nobody, Vec::new(), dir.path().to_path_buf());
        std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        let lock = super::super::serving_lock::lock_path(&db);
        for file in [&db, &lock, &key] {
            std::fs::write(file, b"").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(file, Some(uid), None).unwrap();
        }
        refuse(&db, &service).unwrap();
        refuse_unreadable_key(&key, &service).unwrap();
        std::os::unix::fs::chown(&lock, Some(0), Some(0)).unwrap();
        let refused = refuse(&db, &service).unwrap_err().to_string();
        for said in ["cannot read the serving lock", "mode 0600", "chown nobody"] {
            assert!(refused.contains(said), "{said:?} in {refused}");
        }
        std::os::unix::fs::chown(&lock, Some(uid), None).unwrap();
        std::os::unix::fs::chown(&key, Some(0), Some(0)).unwrap();
        let refused = refuse_unreadable_key(&key, &service)
            .unwrap_err()
            .to_string();
        for said in ["store.key_file", "cannot read it", "chown nobody"] {
            assert!(refused.contains(said), "{said:?} in {refused}");
        }
    }

    /// A store and key below a directory the service's account may not enter (a 0700 one
    /// of root's, as /root is): refused for that account, naming the directory. Files of
    /// its own at the right modes did not help it, and a check run as root passed.
    #[test]
    fn a_store_below_a_directory_the_service_account_cannot_enter_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let outer = tempfile::tempdir().unwrap();
        let closed = outer.path().join("closed");
        let dir = closed.join("state");
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("radmfa.db");
        let key = dir.join("radmfa.key");
        let nobody = User::from_name("nobody")
            .unwrap()
            .expect("a nobody account");
        let uid = nobody.uid.as_raw();
        let service = Who::Owner(nobody, Vec::new(), dir.clone());
        std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
        std::fs::write(&key, b"").unwrap();
        std::os::unix::fs::chown(&key, Some(uid), None).unwrap();
        std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
        refuse(&db, &service).unwrap();
        refuse_unreadable_key(&key, &service).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let refused = refuse(&db, &service).unwrap_err().to_string();
        let shown = closed.display().to_string();
        for said in [
            "store.path",
            "cannot enter the directory",
            &shown,
            "mode 0700",
        ] {
            assert!(refused.contains(said), "{said:?} in {refused}");
        }
        let refused = refuse_unreadable_key(&key, &service)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("store.key_file") && refused.contains(&shown),
            "{refused}"
        );
        // Reached through a link from an open directory: the kernel still walks the closed
        // one the link leads into.
        let open = outer.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::os::unix::fs::symlink(&dir, open.join("state")).unwrap();
        let linked = open.join("state").join("radmfa.db");
        let refused = refuse(&linked, &service).unwrap_err().to_string();
        assert!(
            refused.contains("cannot enter the directory") && refused.contains(&shown),
            "{refused}"
        );
        // The database a link into a directory it may enter but not write (root's, 0755):
        // SQLite and the serving lock make their files beside the link's target.
        let data = outer.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(data.join("radmfa.db"), b"").unwrap();
        std::os::unix::fs::chown(data.join("radmfa.db"), Some(uid), None).unwrap();
        let own = outer.path().join("own");
        std::fs::create_dir(&own).unwrap();
        std::os::unix::fs::chown(&own, Some(uid), None).unwrap();
        std::os::unix::fs::symlink(data.join("radmfa.db"), own.join("radmfa.db")).unwrap();
        let refused = refuse(&own.join("radmfa.db"), &service)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("cannot create files in the directory")
                && refused.contains(&data.display().to_string()),
            "{refused}"
        );
    }

    /// In a directory that is root's, the guess comes from the database's owner, and the
    /// message names the database: it named the directory, root's, as that user's.
    #[test]
    fn the_guess_names_the_file_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("radmfa.db");
        std::fs::write(&db, b"").unwrap();
        let nobody = User::from_name("nobody")
            .unwrap()
            .expect("a nobody account");
        std::os::unix::fs::chown(dir.path(), Some(0), None).unwrap();
        std::os::unix::fs::chown(&db, Some(nobody.uid.as_raw()), None).unwrap();
        let said = presumed_service(&db)
            .expect("nobody, from the database")
            .described();
        assert!(
            said.ends_with(&format!("the owner of {})", db.display())),
            "{said}"
        );
        std::os::unix::fs::chown(dir.path(), Some(nobody.uid.as_raw()), None).unwrap();
        let said = presumed_service(&db).unwrap().described();
        assert!(
            said.ends_with(&format!("the owner of {})", dir.path().display())),
            "{said}"
        );
    }
}
