//! The fuzz targets' bodies (fuzz/common/bodies.rs) on the stable toolchain: every seed in
//! fuzz/corpus/<target>/, then a deterministic stream of mutations of them (bit flips, octet
//! overwrites, truncation, extension, splicing, Length fix-ups) and pure noise. It is no
//! substitute for coverage-guided fuzzing (`cargo +nightly fuzz run <target>`, see
//! BENCHMARKS.md), but it runs in CI on every change and replays the committed seeds.
//!
//! RADMFA_FUZZ_ITERS (default 20000 per target) scales the run; RADMFA_FUZZ_SEED picks
//! another deterministic stream.

#![allow(dead_code)]

use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

include!("../fuzz/common/bodies.rs");

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run fuzz/make-seeds.sh)", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seed-"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn iterations() -> usize {
    std::env::var("RADMFA_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn rng(target: &str) -> StdRng {
    let base: u64 = std::env::var("RADMFA_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let salt = target
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    StdRng::seed_from_u64(base ^ salt)
}

/// One mutation of `seed` (or noise), in the spirit of libFuzzer's default mutators.
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..=4) {
        match rng.gen_range(0..8) {
            0 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.gen_range(0..b.len());
                b[i] = rng.gen();
            }
            2 => b.truncate(rng.gen_range(0..=b.len())),
            3 => {
                let mut extra = vec![0u8; rng.gen_range(1..64)];
                rng.fill_bytes(&mut extra);
                b.extend(extra);
            }
            4 => {
                // Splice: the head of this seed, the tail of another.
                let other = &seeds[rng.gen_range(0..seeds.len())];
                let cut = rng.gen_range(0..=b.len());
                let from = rng.gen_range(0..=other.len());
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            5 if b.len() >= 4 => {
                // Make the RADIUS Length field agree with the new size, so the attribute
                // walk (not the framing check) sees the damage.
                let len = (b.len().min(4096) as u16).to_be_bytes();
                b[2..4].copy_from_slice(&len);
            }
            6 if b.len() > 22 => {
                // An attribute length octet set to something interesting.
                let i = rng.gen_range(21..b.len());
                b[i] = [0u8, 1, 2, 18, 253, 255][rng.gen_range(0..6)];
            }
            _ => {
                let mut noise = vec![0u8; rng.gen_range(0..300)];
                rng.fill_bytes(&mut noise);
                b = noise;
            }
        }
    }
    b
}

fn run(target: &str, body: fn(&[u8])) {
    let seeds = seeds(target);
    for s in &seeds {
        body(s);
    }
    let mut rng = rng(target);
    for _ in 0..iterations() {
        body(&mutate(&mut rng, &seeds));
    }
}

#[test]
fn fuzz_packet_roundtrip() {
    run("packet_roundtrip", packet_roundtrip);
}

#[test]
fn fuzz_message_authenticator() {
    run("message_authenticator", message_authenticator);
}

#[test]
fn fuzz_builder_roundtrip() {
    run("builder_roundtrip", builder_roundtrip);
}

#[test]
fn fuzz_config() {
    run("config", config);
}

#[test]
fn fuzz_import_csv() {
    run("import_csv", import_csv);
}

#[test]
fn fuzz_import_pskc() {
    run("import_pskc", import_pskc);
}

/// The captured seeds are real, signed requests: every one must reach the decoder's success
/// path, or the corpus is not exercising what it claims to; and the captures of the clients
/// other than radclient must be there by name (a bound of "at least 7 of 9" let the only
/// pyrad and pam_radius_auth captures be lost: evidence audit).
#[test]
fn captured_seeds_decode() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/packet_roundtrip");
    let mut users = Vec::new();
    let mut captures = 0;
    for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("seed-") {
            continue;
        }
        captures += usize::from(name.starts_with("seed-capture-"));
        let raw = std::fs::read(e.path()).unwrap();
        let req = radmfa::radius::decode_request(&raw, b"fuzz-secret", false)
            .unwrap_or_else(|e| panic!("{name} does not decode with the fuzz secret: {e}"));
        users.push((req.user_name(), req.nas_identifier()));
    }
    assert_eq!(captures, 8, "fuzz/make-seeds.sh captures 8 datagrams");
    // pyrad's request, and pam_radius_auth's through pamtester (see fuzz/make-seeds.sh).
    for (user, nas) in [("carol", Some("pyrad")), ("dave", None)] {
        assert!(
            users
                .iter()
                .any(|(u, n)| u.as_deref() == Some(user) && (nas.is_none() || n.as_deref() == nas)),
            "no capture of {user}'s request: {users:?}"
        );
    }
}

/// A mutated signed seed fails verification; re-signed (`resign`), it decodes, so the
/// targets' mutations reach what lies behind the check: here a Proxy-State's value changed.
#[test]
fn resigned_mutations_get_past_the_message_authenticator() {
    let seeds = seeds("packet_roundtrip");
    let with_proxy_state = seeds
        .iter()
        .find(|s| {
            radmfa::radius::decode_request(s, b"fuzz-secret", true)
                .is_ok_and(|r| !r.proxy_states().is_empty())
        })
        .expect("a captured seed with Proxy-State and Message-Authenticator");
    let req = radmfa::radius::decode_request(with_proxy_state, b"fuzz-secret", true).unwrap();
    let ps = req.proxy_states()[0].clone();
    let at = with_proxy_state
        .windows(ps.len() + 2)
        .position(|w| w[0] == 33 && w[2..] == ps[..])
        .unwrap();
    let mut mutated = with_proxy_state.clone();
    mutated[at + 2] ^= 0x20;
    assert!(radmfa::radius::decode_request(&mutated, b"fuzz-secret", true).is_err());
    let signed = resign(&mutated).expect("one Message-Authenticator");
    let req = radmfa::radius::decode_request(&signed, b"fuzz-secret", true)
        .expect("re-signed, it verifies");
    assert_ne!(req.proxy_states()[0], ps);
    // Not a way around the check for anything else: another secret still fails.
    assert!(radmfa::radius::decode_request(&signed, b"other-secret", true).is_err());
}

/// The captured replies (fuzz/make-reply-seeds.sh), re-signed by `resign_reply`, reach the
/// reply checks' success paths: the strict one for those FreeRADIUS signed with the
/// Message-Authenticator first, the lenient one for all of them; `reply_check` asserts the
/// rest. Without these seeds the reply checks would see only requests re-coded as replies,
/// none with what a real server puts in one (Reply-Message, State, Class, the Proxy-State
/// echo) or where it puts its Message-Authenticator.
#[test]
fn captured_replies_verify_once_resigned() {
    use radmfa::client::verify::{verify, Verify};
    let auth = [7u8; 16];
    let replies: Vec<Vec<u8>> = seeds("message_authenticator")
        .into_iter()
        .filter(|s| matches!(s[0], 2 | 3 | 11))
        .map(|s| resign_reply(&s, &auth).expect("a captured reply frames"))
        .collect();
    let passing = |mode| {
        replies
            .iter()
            .filter(|r| verify(mode, r, &auth, b"fuzz-secret").is_ok())
            .count()
    };
    assert_eq!(
        replies.len(),
        7,
        "Accept, Reject and Challenge, signed and not, and one signed last"
    );
    assert_eq!(passing(Verify::Lenient), 7);
    assert_eq!(passing(Verify::Signed), 4);
    assert_eq!(passing(Verify::Strict), 3);
    for r in &replies {
        reply_check(r, &auth);
    }
}
