//! Build script: migrations and the build's identity.

use std::path::Path;
use std::process::Command;

fn main() {
    // `sqlx::migrate!` embeds the files under migrations/ at compile time, but cargo does not
    // know to rebuild when one is added there (sqlx's documented caveat): without this, an
    // incremental build after adding a migration would ship without it.
    println!("cargo:rerun-if-changed=migrations");
    // Which build this is, beside the crate version every build shares (0.1.0): an admin
    // asked which release runs (to know whether going back needs a restore, say) had
    // nothing else to go by. RADMFA_BUILD, when set, is taken as written (a packager's own
    // release name); else the git commit, where the source is a git checkout.
    println!("cargo:rerun-if-env-changed=RADMFA_BUILD");
    let build = std::env::var("RADMFA_BUILD")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "build not from git".into());
    println!("cargo:rustc-env=RADMFA_BUILD={build}");
}

/// "git 0315531, 2026-12-05" (the commit and its date), watching the files that change
/// with each commit or checkout.
fn git_commit() -> Option<String> {
    let git = Path::new(".git");
    if git.is_dir() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
            if let Some(reference) = head.trim().strip_prefix("ref: ") {
                if git.join(reference).exists() {
                    println!("cargo:rerun-if-changed=.git/{reference}");
                }
            }
        }
        if git.join("packed-refs").exists() {
            println!("cargo:rerun-if-changed=.git/packed-refs");
        }
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%h %cs"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (commit, date) = text.trim().split_once(' ')?;
    Some(format!("git {commit}, {date}"))
}
