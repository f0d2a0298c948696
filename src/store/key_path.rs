//! For `serve` run as root: who else could put another seed key in place of the one in
//! `store.key_file`, by owning it, or by being able to rename entries in a directory its
//! path is looked up through.

use std::path::{Component, Path, PathBuf};

/// For `serve` run as root: a private key file still belongs to somebody, who reads it and
/// can put another key in its place. Run as root, radmfa read a key of any owner, say
/// `nobody`'s, unsaid. Only a warning: root's admin commands read the service account's
/// key, which is right, and a `serve` as root for a look in the foreground is tolerated.
#[cfg(unix)]
pub fn owner_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let shown = crate::admin::shell_arg(&path.display().to_string());
    let named = |uid: u32| super::writable::account(nix::unistd::Uid::from_raw(uid));
    let owner = std::fs::metadata(path).ok()?.uid();
    if owner != 0 {
        return Some(format!(
            "store.key_file {}: radmfa serve runs as root, but the key belongs to {}, who \
             can read it and replace it: run radmfa serve as that account (the shipped \
             unit's User=), or `chown root {shown}`",
            path.display(),
            named(owner)
        ));
    }
    // Root's key in a directory another account can write to, at any level up to /, or in
    // any directory a symlink on the way (to the key, or to a directory above it) sits in:
    // that account can rename a file, a directory or a link of its own over it (reviews).
    let real = std::fs::canonicalize(path).ok()?;
    let own_dirs = [
        std::path::absolute(path).ok()?.parent()?.to_path_buf(),
        real.parent()?.to_path_buf(),
    ];
    let (dirs, links) = lookup_dirs(path)?;
    // A link another account owns in a sticky directory (/tmp): the sticky bit keeps
    // others out, not the link's owner, who can put another in its place (review).
    for link in links {
        let Ok(meta) = std::fs::symlink_metadata(&link) else {
            continue;
        };
        let sticky = link
            .parent()
            .and_then(|d| std::fs::metadata(d).ok())
            .is_some_and(|d| d.mode() & 0o1000 != 0);
        if meta.uid() != 0 && sticky {
            let shown = crate::admin::shell_arg(&link.display().to_string());
            return Some(format!(
                "store.key_file {}: radmfa serve runs as root, but the link {shown} on its \
                 path belongs to {}, who can point it at another key: run radmfa serve as \
                 that account (the shipped unit's User=), or keep the key in directories \
                 only root can write to",
                path.display(),
                named(meta.uid())
            ));
        }
    }
    for dir in dirs {
        let Some(who) = dir_writer(&dir) else {
            continue;
        };
        let which = if own_dirs.contains(&dir) {
            "the key's directory".to_string()
        } else {
            let shown = crate::admin::shell_arg(&dir.display().to_string());
            format!("the directory {shown} on its path")
        };
        return Some(format!(
            "store.key_file {}: radmfa serve runs as root, but {which} {who}, who can put \
             another key in its place: run radmfa serve as that account (the shipped unit's \
             User=), or keep the key in directories only root can write to",
            path.display(),
        ));
    }
    None
}

/// Every directory a name is looked up in while `path` is resolved, symlinks followed one
/// step at a time (as the kernel does), in order: whoever can rename entries in any of them
/// decides what the path opens. `canonicalize` gives only the end of the chain; the
/// directories of the links on the way count as much. With them, the links themselves, in
/// order. None past 40 links (a loop).
#[cfg(unix)]
fn lookup_dirs(path: &Path) -> Option<(Vec<PathBuf>, Vec<PathBuf>)> {
    // Still to walk, the next last.
    let mut todo: Vec<Step> = Vec::new();
    push_steps(&mut todo, &std::path::absolute(path).ok()?);
    let mut current = PathBuf::from("/");
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    while let Some(step) = todo.pop() {
        match step {
            Step::Root => current = PathBuf::from("/"),
            Step::Parent => {
                current.pop();
            }
            Step::Name(name) => {
                if !dirs.contains(&current) {
                    dirs.push(current.clone());
                }
                let next = current.join(&name);
                match std::fs::read_link(&next) {
                    Ok(target) => {
                        links.push(next);
                        if links.len() > 40 {
                            return None;
                        }
                        // A relative target resolves from the link's directory (`current`);
                        // an absolute one starts again at the root.
                        push_steps(&mut todo, &target);
                    }
                    Err(_) => current = next,
                }
            }
        }
    }
    Some((dirs, links))
}

/// One step of a path's resolution.
enum Step {
    Root,
    Parent,
    Name(std::ffi::OsString),
}

/// Puts `path`'s steps on `todo` so that its first is taken next.
fn push_steps(todo: &mut Vec<Step>, path: &Path) {
    let steps: Vec<Step> = path
        .components()
        .filter_map(|c| match c {
            Component::RootDir => Some(Step::Root),
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(n) => Some(Step::Name(n.to_os_string())),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(steps.into_iter().rev());
}

/// Who, besides root, can replace entries in `dir`: its owner, a group given write
/// permission, an account or group an ACL lets write, or anyone when it is world-writable.
/// The sticky bit (as on /tmp) keeps others from renaming over what they do not own, so it
/// clears all but the owner.
#[cfg(unix)]
fn dir_writer(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok()?;
    let mode = meta.mode();
    if meta.uid() != 0 {
        let named = super::writable::account(nix::unistd::Uid::from_raw(meta.uid()));
        return Some(format!("belongs to {named}"));
    }
    if mode & 0o1000 != 0 {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some(format!(
            "is writable by every account (mode {:04o})",
            mode & 0o7777
        ));
    }
    // With an ACL the mode's group bits are its mask, not the owning group's permission
    // (acl(5)): that is the group entry's, under the mask (review).
    let (named, group_writes) = match acl_entries(dir) {
        Some(entries) => (acl_writer(&entries), acl_group_writes(&entries)),
        None => (None, mode & 0o020 != 0),
    };
    if let Some(who) = named {
        return Some(who);
    }
    if group_writes && meta.gid() != 0 {
        return Some(format!("is writable by the group {}", group(meta.gid())));
    }
    None
}

#[cfg(unix)]
fn group(gid: u32) -> String {
    let gid = nix::unistd::Gid::from_raw(gid);
    match nix::unistd::Group::from_gid(gid) {
        Ok(Some(g)) => format!("{} (gid {gid})", g.name),
        _ => format!("gid {gid}"),
    }
}

/// A POSIX ACL on `dir` that lets an account or a group other than root's write to it
/// (`setfacl -m u:nobody:rwx`): with one, the mode's group bits are the ACL's mask, and a
/// root-owned 0775 directory said nothing of the account it named (review).
#[cfg(unix)]
fn acl_writer(entries: &[AclEntry]) -> Option<String> {
    let mask = acl_mask(entries);
    let writes = |e: &AclEntry| e.perm & mask & 2 != 0 && e.id != 0;
    if let Some(e) = entries.iter().find(|e| e.tag == ACL_USER && writes(e)) {
        let named = super::writable::account(nix::unistd::Uid::from_raw(e.id));
        return Some(format!("is writable by {named} (an ACL entry)"));
    }
    entries
        .iter()
        .find(|e| e.tag == ACL_GROUP && writes(e))
        .map(|e| format!("is writable by the group {} (an ACL entry)", group(e.id)))
}

/// The mask caps the named entries and the owning group's (acl(5)); none, nothing.
fn acl_mask(entries: &[AclEntry]) -> u16 {
    entries
        .iter()
        .find(|e| e.tag == ACL_MASK)
        .map_or(7, |e| e.perm)
}

/// Whether the ACL lets the directory's owning group write.
fn acl_group_writes(entries: &[AclEntry]) -> bool {
    entries
        .iter()
        .find(|e| e.tag == ACL_GROUP_OBJ)
        .is_some_and(|e| e.perm & acl_mask(entries) & 2 != 0)
}

/// The directory's access ACL, where it has one beyond its mode.
#[cfg(target_os = "linux")]
fn acl_entries(dir: &Path) -> Option<Vec<AclEntry>> {
    parse_acl(&read_access_acl(dir)?)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn acl_entries(_dir: &Path) -> Option<Vec<AclEntry>> {
    None
}

const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;

struct AclEntry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// Linux's `system.posix_acl_access` value: a version (2), then entries of tag, permission
/// bits and id, little-endian (include/uapi/linux/posix_acl_xattr.h). Read here because no
/// kept crate reads it without libacl; only what decides who may write is looked at.
fn parse_acl(raw: &[u8]) -> Option<Vec<AclEntry>> {
    let (version, rest) = raw.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != 2 || rest.len() % 8 != 0 {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|c| AclEntry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// The directory's access ACL, if it has one beyond its mode.
#[cfg(target_os = "linux")]
fn read_access_acl(dir: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let name = c"system.posix_acl_access";
    let mut buf = vec![0u8; 1024];
    // SAFETY: both strings are NUL-terminated and live across the call; the buffer's
    // pointer and length describe memory this function owns.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    // ENODATA (no ACL), ENOTSUP (a file system without them), or one over 1 KiB (127
    // entries): nothing read.
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::seal::KeyFile;

    /// Root reads any file, so only root meets a key of a stranger's: the test plays it
    /// when run as root (CI is), and says it did not otherwise.
    #[cfg(unix)]
    #[test]
    fn serve_as_root_is_warned_of_a_key_file_another_account_owns() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: a key file of another account cannot be made here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("radmfa.key");
        KeyFile::load_or_create(&path).unwrap();
        assert_eq!(owner_warning(&path), None);
        // Root's key in a directory another account owns.
        std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        let said = owner_warning(&path).expect("a warning");
        assert!(
            said.contains("the key's directory belongs to nobody (uid 65534)"),
            "{said}"
        );
        std::os::unix::fs::chown(dir.path(), Some(0), None).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let said = owner_warning(&path).expect("a warning");
        assert!(
            said.contains(&path.display().to_string())
                && said.contains("belongs to nobody (uid 65534), who can read it and replace it"),
            "{said}"
        );
    }

    /// Another account's way in need not be the key's own directory: a directory above it,
    /// a group with write permission, or the directory of a symlink to the key (review).
    #[cfg(unix)]
    #[test]
    fn serve_as_root_is_warned_of_any_directory_another_account_can_write() {
        use std::os::unix::fs::{chown, PermissionsExt};
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: directories of another account cannot be made here");
            return;
        }
        let top = tempfile::tempdir().unwrap();
        let mid = top.path().join("etc");
        std::fs::create_dir(&mid).unwrap();
        let path = mid.join("radmfa.key");
        KeyFile::load_or_create(&path).unwrap();
        assert_eq!(owner_warning(&path), None);

        chown(top.path(), Some(65534), None).unwrap();
        let said = owner_warning(&path).expect("a warning");
        assert!(
            said.contains(&format!(
                "the directory {} on its path belongs to nobody (uid 65534)",
                top.path().display()
            )),
            "{said}"
        );
        chown(top.path(), Some(0), None).unwrap();

        // Group-writable: by a group other than root's it is a warning, by root's not.
        std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert_eq!(owner_warning(&path), None);
        chown(&mid, None, Some(65534)).unwrap();
        let said = owner_warning(&path).expect("a warning");
        assert!(
            said.contains("the key's directory is writable by the group")
                && said.contains("(gid 65534)"),
            "{said}"
        );
        // The sticky bit keeps the group from renaming over root's key.
        std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o1770)).unwrap();
        assert_eq!(owner_warning(&path), None);
        std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o757)).unwrap();
        let said = owner_warning(&path).expect("a warning");
        assert!(
            said.contains("is writable by every account (mode 0757)"),
            "{said}"
        );
        std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o700)).unwrap();

        // A symlink whose directory another account owns: it can point it elsewhere.
        let theirs = top.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let link = theirs.join("radmfa.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(owner_warning(&link), None);
        chown(&theirs, Some(65534), None).unwrap();
        let said = owner_warning(&link).expect("a warning");
        assert!(
            said.contains("the key's directory belongs to nobody"),
            "{said}"
        );
        // And a link in root's directory to a key in theirs.
        let moved = theirs.join("real.key");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&moved, &path).unwrap();
        let said = owner_warning(&path).expect("a warning");
        assert!(
            said.contains("the key's directory belongs to nobody"),
            "{said}"
        );
    }

    /// A link in the middle of the chain counts: `key -> theirs/hop -> real.key` with
    /// `theirs` another account's, and a directory reached through such a link (review).
    #[cfg(unix)]
    #[test]
    fn serve_as_root_is_warned_of_a_link_on_the_way_in_another_accounts_directory() {
        use std::os::unix::fs::{chown, symlink};
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: directories of another account cannot be made here");
            return;
        }
        let top = tempfile::tempdir().unwrap();
        let (mine, theirs) = (top.path().join("mine"), top.path().join("theirs"));
        std::fs::create_dir(&mine).unwrap();
        std::fs::create_dir(&theirs).unwrap();
        let real = mine.join("real.key");
        KeyFile::load_or_create(&real).unwrap();
        symlink(&real, theirs.join("hop")).unwrap();
        let key = mine.join("radmfa.key");
        symlink(theirs.join("hop"), &key).unwrap();
        // A directory reached through a link in theirs.
        symlink(&mine, theirs.join("dirlink")).unwrap();
        symlink(theirs.join("dirlink"), top.path().join("d")).unwrap();
        let via_dir = top.path().join("d").join("real.key");
        assert_eq!(owner_warning(&key), None);
        assert_eq!(owner_warning(&via_dir), None);
        chown(&theirs, Some(65534), None).unwrap();
        let shown = format!(
            "the directory {} on its path belongs to nobody",
            theirs.display()
        );
        for path in [&key, &via_dir] {
            let said = owner_warning(path).expect("a warning");
            assert!(said.contains(&shown), "{said}");
        }
        chown(&theirs, Some(0), None).unwrap();
        // A link of another account's in a sticky directory (as /tmp): its owner can put
        // another in its place, though the directory is root's (review).
        let sticky = top.path().join("st");
        std::fs::create_dir(&sticky).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let lnk = sticky.join("lnk");
        symlink(&mine, &lnk).unwrap();
        let via_link = lnk.join("real.key");
        assert_eq!(owner_warning(&via_link), None);
        std::os::unix::fs::lchown(&lnk, Some(65534), None).unwrap();
        let said = owner_warning(&via_link).expect("a warning");
        assert!(
            said.contains(&format!(
                "the link {} on its path belongs to nobody",
                lnk.display()
            )),
            "{said}"
        );
        // A loop resolves to nothing and says nothing (the key could not be opened).
        symlink("loop", mine.join("loop")).unwrap();
        assert_eq!(owner_warning(&mine.join("loop")), None);
    }

    /// An ACL entry that lets another account or group write to a root-owned directory
    /// (`setfacl -m u:nobody:rwx`) is warned of; one the mask takes write from is not.
    #[cfg(target_os = "linux")]
    #[test]
    fn serve_as_root_is_warned_of_an_acl_that_lets_another_account_write() {
        use std::os::unix::ffi::OsStrExt;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: the test's ACL is not one of another account's");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("radmfa.key");
        KeyFile::load_or_create(&path).unwrap();
        let set = |entries: &[(u16, u16, u32)]| {
            let mut v = 2u32.to_le_bytes().to_vec();
            for (tag, perm, id) in entries {
                v.extend(tag.to_le_bytes());
                v.extend(perm.to_le_bytes());
                v.extend(id.to_le_bytes());
            }
            let p = std::ffi::CString::new(dir.path().as_os_str().as_bytes()).unwrap();
            // SAFETY: NUL-terminated strings and a buffer that live across the call.
            let r = unsafe {
                libc::setxattr(
                    p.as_ptr(),
                    c"system.posix_acl_access".as_ptr(),
                    v.as_ptr().cast(),
                    v.len(),
                    0,
                )
            };
            assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
        };
        const ANY: u32 = u32::MAX;
        // user::rwx user:nobody:rwx group::r-x mask::rwx other::r-x
        set(&[
            (1, 7, ANY),
            (2, 7, 65534),
            (4, 5, ANY),
            (0x10, 7, ANY),
            (0x20, 5, ANY),
        ]);
        let said = owner_warning(&path).expect("a warning");
        assert!(
            said.contains("the key's directory is writable by nobody (uid 65534) (an ACL entry)"),
            "{said}"
        );
        // group:nogroup:rwx
        set(&[
            (1, 7, ANY),
            (4, 5, ANY),
            (8, 7, 65534),
            (0x10, 7, ANY),
            (0x20, 5, ANY),
        ]);
        let said = owner_warning(&path).expect("a warning");
        assert!(said.contains("(gid 65534) (an ACL entry)"), "{said}");
        // The mask r-x: the named entry cannot write.
        set(&[
            (1, 7, ANY),
            (2, 7, 65534),
            (4, 5, ANY),
            (0x10, 5, ANY),
            (0x20, 5, ANY),
        ]);
        assert_eq!(owner_warning(&path), None);
        // The owning group is another's and the mode shows g+w, but that is the mask: the
        // group's own entry is r-x, and only root is named (review).
        std::os::unix::fs::chown(dir.path(), None, Some(65534)).unwrap();
        set(&[
            (1, 7, ANY),
            (2, 7, 0),
            (4, 5, ANY),
            (0x10, 7, ANY),
            (0x20, 0, ANY),
        ]);
        assert_eq!(owner_warning(&path), None);
        // Its entry rwx: warned of.
        set(&[(1, 7, ANY), (4, 7, ANY), (0x10, 7, ANY), (0x20, 0, ANY)]);
        let said = owner_warning(&path).expect("a warning");
        assert!(said.contains("writable by the group"), "{said}");
    }
}
