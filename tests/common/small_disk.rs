//! A small tmpfs to fill up: a full disk, made and undone while a server runs (root only).

/// A tmpfs of a few MiB on a temp dir (owned by `owner`, the `postgres` user for a
/// tablespace): a disk that can be filled (a file of zeros takes every free byte) and given room again
/// (the file removed) while PostgreSQL runs. Unmounted when dropped, after the cluster
/// that used it (declare it first).
pub struct SmallDisk {
    _dir: tempfile::TempDir,
    pub mount: std::path::PathBuf,
}

impl SmallDisk {
    pub fn mount(mib: u32, owner: Option<&str>) -> SmallDisk {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // The server's user must reach the mount point.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let run = |program: &str, args: &[&str]| {
            let out = std::process::Command::new(program)
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("{program}: {e}"));
            assert!(
                out.status.success(),
                "{program} {args:?} (this test mounts a tmpfs, as root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let at = mount.display().to_string();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
                &at,
            ],
        );
        let disk = SmallDisk { _dir: dir, mount };
        if let Some(owner) = owner {
            run("chown", &[&format!("{owner}:{owner}"), &at]);
        }
        disk
    }

    pub fn filler(&self) -> std::path::PathBuf {
        self.mount.join("filler")
    }

    /// Takes every free byte.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    /// Gives the room back.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}
