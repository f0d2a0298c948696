//! Build script: migrations and the build's identity.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // `sqlx::migrate!` embeds the files under migrations/ at compile time, but cargo does not
    // know to rebuild when one is added there (sqlx's documented caveat): without this, an
    // incremental build after adding a migration would ship without it.
    println!("cargo:rerun-if-changed=migrations");
    // Which build this is, beside the crate version every build shares (0.1.0): an admin
    // asked which release runs (to know whether going back needs a restore, say) had
    // nothing else to go by. RADMFA_BUILD, when set, is taken as written (a packager's own
    // release name); else the git commit, where the source is this crate's own checkout.
    println!("cargo:rerun-if-env-changed=RADMFA_BUILD");
    let build = std::env::var("RADMFA_BUILD")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "build not from git".into());
    // It goes into a Prometheus label and a log line: no quote, backslash or control
    // character from a packager's value may break either.
    let build: String = build
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    println!("cargo:rustc-env=RADMFA_BUILD={build}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}

/// "git 0315531, 2026-12-05" (the commit and its date), watching the files git changes with
/// each commit, checkout or reset: the reflog, HEAD, and the branch's ref, loose or packed,
/// in a worktree too. Not a parent directory's repository (a source tarball unpacked inside
/// another checkout): its commit is not this source's.
fn git_commit() -> Option<String> {
    let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(&here).ok()? {
        return None;
    }
    let git_dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = git(&["rev-parse", "--git-common-dir"])
        .map(|d| absolute(&here, &d))
        .unwrap_or_else(|| git_dir.clone());
    // The refs as directories too (cargo scans a directory's files): a commit after
    // `git pack-refs` writes a loose ref that was not there to watch, and a reftable
    // repository keeps its refs in `reftable/` with HEAD a stub.
    let mut watched = vec![git_dir.join("HEAD"), git_dir.join("logs/HEAD")];
    watched.push(common.join("packed-refs"));
    watched.push(common.join("refs/heads"));
    watched.push(common.join("reftable"));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(branch));
    }
    // Only paths that exist: cargo runs a build script whose watched path is missing on
    // every build.
    for f in watched.iter().filter(|f| f.exists()) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let line = git(&["log", "-1", "--format=%h %cs"])?;
    let (commit, date) = line.split_once(' ')?;
    Some(format!("git {commit}, {date}"))
}

fn absolute(base: &str, dir: &str) -> PathBuf {
    let p = Path::new(dir);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new(base).join(p)
    }
}
