//! The users a load run logs in as: a file of `user,password,base32-seed` lines, or names
//! generated the way the test harness and `bench-users` make them (`user00000` /
//! `pw-user00000`). Each user also carries the last TOTP step the generator used for it,
//! because radmfa refuses a step already used by a token.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::{bail, Context};

use crate::secret::Secret;

#[derive(Debug)]
pub struct LoadUser {
    pub name: String,
    pub password: Secret,
    /// Raw TOTP seed; `None` for generated names (only password-only flows can use them).
    pub seed: Option<Secret>,
    /// Last TOTP step handed out for this user; `i64::MIN` = none yet.
    last_step: AtomicI64,
}

impl LoadUser {
    pub fn new(name: &str, password: &str, seed: Option<Secret>) -> Self {
        LoadUser {
            name: name.to_string(),
            password: Secret::from(password),
            seed,
            last_step: AtomicI64::new(i64::MIN),
        }
    }

    /// Claims the lowest step in `lo..=hi` later than any step claimed before, so that no two
    /// requests for this user carry the same code (a server with a replay guard would refuse
    /// the second). `None` when this user has used up the window for now.
    pub fn claim_step(&self, lo: i64, hi: i64) -> Option<i64> {
        let mut last = self.last_step.load(Ordering::Relaxed);
        loop {
            let next = last.saturating_add(1).max(lo);
            if next > hi {
                return None;
            }
            match self.last_step.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(next),
                Err(seen) => last = seen,
            }
        }
    }
}

/// The generated name of user `i`, as `LdapUser::generate` and `bench-users` make them.
pub fn generated_name(i: usize) -> String {
    format!("user{i:05}")
}

pub fn generated_password(name: &str) -> String {
    format!("pw-{name}")
}

/// `n` generated users without seeds.
pub fn generate(n: usize) -> Vec<LoadUser> {
    (0..n)
        .map(|i| {
            let name = generated_name(i);
            LoadUser::new(&name, &generated_password(&name), None)
        })
        .collect()
}

/// Parses `user,password,base32-seed` lines (seed optional; `#` comments and blank lines
/// skipped). The password may not contain a comma; the seed is unpadded or padded Base32.
pub fn parse(text: &str) -> anyhow::Result<Vec<LoadUser>> {
    // A byte-order mark (a file saved by a Windows editor) was read as part of the first
    // user's name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        // A spreadsheet's header line (`user,password,seed`) was refused as "line 1: seed
        // is not Base32".
        if users.is_empty() && is_header(&fields) {
            continue;
        }
        let (name, password, seed) = match fields.as_slice() {
            [u, p] => (*u, *p, None),
            [u, p, ""] => (*u, *p, None),
            [u, p, s] => (
                *u,
                *p,
                Some(decode_seed(s).with_context(|| format!("line {}", n + 1))?),
            ),
            _ => bail!("line {}: expected user,password[,base32-seed]", n + 1),
        };
        if name.is_empty() {
            bail!("line {}: empty user name", n + 1);
        }
        users.push(LoadUser::new(name, password, seed));
    }
    if users.is_empty() {
        bail!("no users");
    }
    Ok(users)
}

/// `user,password[,seed]` as column names rather than a user: the first field a name for
/// the user column, the second one for the password.
fn is_header(fields: &[&str]) -> bool {
    let is = |f: &str, names: &[&str]| names.iter().any(|n| f.trim().eq_ignore_ascii_case(n));
    fields.len() >= 2
        && is(
            fields[0],
            &["user", "username", "user_name", "name", "login", "uid"],
        )
        && is(fields[1], &["password", "pass", "passwd", "pw"])
}

pub fn load(path: &Path) -> anyhow::Result<Vec<LoadUser>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading users file {}", path.display()))?;
    parse(&text).with_context(|| format!("users file {}", path.display()))
}

/// Base32 as authenticator apps show it: case-insensitive, spaces and padding optional.
pub fn decode_seed(text: &str) -> anyhow::Result<Secret> {
    let mut clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    while !clean.len().is_multiple_of(8) {
        clean.push('=');
    }
    let raw = data_encoding::BASE32
        .decode(clean.as_bytes())
        .map_err(|e| anyhow::anyhow!("seed is not Base32: {e}"))?;
    if raw.is_empty() {
        bail!("empty seed");
    }
    Ok(Secret::new(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_seeds() {
        let u = parse("# c\nalice,pw1,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\nbob,pw2\ncarol,pw3,\n")
            .unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(
            u[0].seed.as_ref().unwrap().expose(),
            b"12345678901234567890"
        );
        assert!(u[1].seed.is_none() && u[2].seed.is_none());
        assert_eq!(
            decode_seed("gezd gnbv gy3t qojq").unwrap().expose(),
            b"1234567890"
        );
        // A header line is skipped, and a byte-order mark is not part of the first name.
        let u = parse("\u{feff}user,password,seed\nalice,pw1,GEZDGNBVGY3TQOJQ\n").unwrap();
        assert_eq!((u.len(), u[0].name.as_str()), (1, "alice"));
        let u = parse("\u{feff}alice,pw1\n").unwrap();
        assert_eq!(u[0].name, "alice");
        assert!(parse("a,b,c,d").is_err());
        assert!(parse("a,b,!!").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn steps_are_claimed_once_and_in_order() {
        let u = LoadUser::new("u", "p", None);
        assert_eq!(u.claim_step(10, 12), Some(10));
        assert_eq!(u.claim_step(10, 12), Some(11));
        assert_eq!(u.claim_step(5, 12), Some(12));
        assert_eq!(u.claim_step(10, 12), None);
        assert_eq!(u.claim_step(20, 20), Some(20), "time moved on");
    }

    #[test]
    fn generated_names_match_the_test_harness() {
        let g = generate(2);
        assert_eq!(g[1].name, "user00001");
        assert_eq!(g[1].password.expose(), b"pw-user00001");
    }
}
