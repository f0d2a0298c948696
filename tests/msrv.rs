//! Cargo.toml's `rust-version` is what `scripts/install-deps.sh` compares the machine's
//! cargo with before skipping rustup: it must be at least every locked dependency's own
//! (it said 1.85 while `time` 0.3.55 needs 1.88, so a 1.85–1.87 toolchain passed the check
//! and then failed the build).

use std::process::Command;

/// "1.88" and "1.88.0" alike.
fn version(v: &str) -> [u64; 3] {
    let mut out = [0; 3];
    for (slot, part) in out.iter_mut().zip(v.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    out
}

/// The triple this toolchain builds for, from the rustc beside cargo.
fn host() -> String {
    let rustc = std::path::Path::new(env!("CARGO")).with_file_name("rustc");
    let out = Command::new(&rustc).arg("-vV").output().expect("rustc -vV");
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    // Only this platform's packages: a fresh machine has downloaded no others (Android's,
    // Windows'), and the test must not reach the network for them.
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let ours = packages
        .iter()
        .find(|p| p["name"] == "radmfa")
        .and_then(|p| p["rust_version"].as_str())
        .expect("radmfa's rust-version");
    let needs: Vec<(String, &str)> = packages
        .iter()
        .filter_map(|p| {
            let v = p["rust_version"].as_str()?;
            (version(v) > version(ours)).then(|| (format!("{} {}", p["name"], p["version"]), v))
        })
        .collect();
    assert!(
        packages.len() > 50 && needs.is_empty(),
        "rust-version {ours} is older than these dependencies need: {needs:?}"
    );
}
