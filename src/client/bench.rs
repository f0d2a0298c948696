//! Helpers for `bench/run.sh` (hidden subcommands): make N users with seeds for radmfa,
//! the directory and FreeRADIUS in one go, and measure the directory's raw bind rate.
//!
//! Enrolling 10k–100k users through `radmfa user enroll-totp` one process at a time takes
//! minutes; `bench_users` writes them through the `Store` trait with a few concurrent inserts.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::RngCore;
use sha1::{Digest, Sha1};

use super::report::{Outcome, PhaseReport, Tally};
use super::users::{generated_name, generated_password};
use crate::app::open_command_store;
use crate::config::Config;
use crate::secret::Secret;
use crate::store::{NewToken, OtpAlgorithm, Store, TokenFilter, TokenKind};

/// The directory layout the bench uses (the same as the test harness's slapd).
pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";

/// Writes `users.csv` (user,password,base32-seed) and `users.ldif` (the directory, with the
/// seed in `description` where FreeRADIUS's rlm_ldap reads it) into `out`, and with `cfg`
/// enrolls the same seeds as SHA1/6-digit/`period` TOTP tokens `BENCH-<user>` in radmfa's
/// store, under one audit record for the lot.
///
/// With a store, the files are written only once every token is in it: a run that stopped
/// part-way left a `users.csv` whose seeds the store did not hold. A store that already
/// holds `BENCH-` tokens (an earlier run) is refused before anything is written, since
/// enrolling over it failed on the first serial after the files were replaced.
pub async fn bench_users(
    count: usize,
    out: &Path,
    cfg: Option<&Config>,
    period: u32,
) -> anyhow::Result<()> {
    let mut csv = String::with_capacity(count * 64);
    let mut ldif = base_ldif();
    let mut seeds = Vec::with_capacity(count);
    for i in 0..count {
        let name = generated_name(i);
        let password = generated_password(&name);
        let mut seed = vec![0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let b32 = data_encoding::BASE32_NOPAD.encode(&seed);
        let _ = writeln!(csv, "{name},{password},{b32}");
        let _ = writeln!(
            ldif,
            "dn: uid={name},{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\n\
             sn: Bench\ngivenName: {name}\nmail: {name}@example.org\ndescription: {b32}\n\
             userPassword: {}\n",
            ssha(&password)
        );
        seeds.push((name, Secret::new(seed)));
    }
    let audited = match cfg {
        Some(cfg) => enroll_all(cfg, seeds, period, out).await?,
        None => Ok(()),
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // Passwords and seeds: readable by the owner alone, and a file left from an earlier
    // run (or a link planted in its place) is replaced, never written through.
    for (name, text) in [("users.csv", csv), ("users.ldif", ldif)] {
        let path = out.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        use std::io::Write;
        crate::store::seal::create_private(&path)?.write_all(text.as_bytes())?;
    }
    audited
}

fn base_ldif() -> String {
    format!(
        "dn: {BASE_DN}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
         o: Example\ndc: example\n\ndn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n"
    )
}

/// `{SSHA}` as slappasswd makes it: base64(sha1(password ‖ salt) ‖ salt).
fn ssha(password: &str) -> String {
    let mut salt = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut h = Sha1::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(&salt);
    format!("{{SSHA}}{}", data_encoding::BASE64.encode(&raw))
}

/// The serial prefix of the benchmark's tokens.
const BENCH_SERIAL: &str = "BENCH-";

/// Enrolls the seeds. The outer error: nothing was enrolled, or enrolling stopped part-way
/// (audited as far as it got). The inner one: every token is in, but its audit record could
/// not be written; the caller still writes the files that match the store.
async fn enroll_all(
    cfg: &Config,
    seeds: Vec<(String, Secret)>,
    period: u32,
    out: &Path,
) -> anyhow::Result<anyhow::Result<()>> {
    let store = open_command_store(&cfg.store).await?;
    let result = enroll_into(cfg, &store, seeds, period, out).await;
    // Closed, not dropped: with PostgreSQL a dropped pool's connections are cut at exit,
    // which the server logs as "connection reset by peer" (see app::with_command_store).
    store.close().await;
    result
}

async fn enroll_into(
    cfg: &Config,
    store: &Arc<dyn Store>,
    seeds: Vec<(String, Secret)>,
    period: u32,
    out: &Path,
) -> anyhow::Result<anyhow::Result<()>> {
    let earlier = store
        .list_tokens(&TokenFilter::default())
        .await?
        .iter()
        .filter(|r| r.token.serial.starts_with(BENCH_SERIAL))
        .count();
    if earlier > 0 {
        anyhow::bail!(
            "the store already holds {earlier} {BENCH_SERIAL}* token(s) from an earlier \
             bench-users run: use a fresh store (bench/run.sh makes one per run); nothing \
             was enrolled or written"
        );
    }
    let started = Instant::now();
    let total = seeds.len();
    let (first, last) = match (seeds.first(), seeds.last()) {
        (Some(f), Some(l)) => (f.0.clone(), l.0.clone()),
        _ => return Ok(Ok(())),
    };
    let added = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Eight inserts in flight: the store's connection count. Each one commits on its own, so
    // this measures nothing but set-up time; it is not part of any benchmark figure.
    let queue = Arc::new(std::sync::Mutex::new(seeds));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, queue, added) = (store.clone(), queue.clone(), added.clone());
        set.spawn(async move {
            loop {
                let next = queue.lock().expect("queue lock").pop();
                let Some((user, secret)) = next else {
                    return anyhow::Ok(());
                };
                store
                    .add_token(NewToken {
                        serial: format!("{BENCH_SERIAL}{user}"),
                        user: Some(user),
                        kind: TokenKind::Totp,
                        algorithm: OtpAlgorithm::Sha1,
                        digits: 6,
                        period,
                        counter: 0,
                        secret,
                    })
                    .await?;
                added.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    let mut result = Ok(());
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.context("enroll worker panicked").and_then(|r| r) {
            set.abort_all();
            while set.join_next().await.is_some() {}
            result = Err(e);
            break;
        }
    }
    // One record for the lot, as `token import` writes one for a file: tokens that log
    // users in are never added unaudited (without --config this once meant a live store).
    let n = added.load(std::sync::atomic::Ordering::Relaxed);
    let audited = if n > 0 {
        let how = if result.is_ok() {
            String::new()
        } else {
            format!(" (stopped part-way: {n} of {total})")
        };
        let reason = format!(
            "bench-users: {n} benchmark TOTP token(s) {BENCH_SERIAL}{first} … \
             {BENCH_SERIAL}{last} enrolled{how}, seeds in {}",
            out.join("users.csv").display()
        );
        crate::admin::tokens::audit(cfg, store.as_ref(), "", "import", "", Some(reason)).await
    } else {
        Ok(())
    };
    if let Err(e) = result {
        let note = crate::admin::users::unaudited_note(&audited);
        return Err(e.context(format!(
            "enrolling stopped after {n} of {total} tokens; no files were written{note}"
        )));
    }
    eprintln!(
        "enrolled {total} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(audited)
}

/// How `ldap_binds` talks to the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BindMode {
    /// One connection per worker, simple binds one after another: the directory's ceiling.
    Bind,
    /// A new TCP connection for every bind (connect, bind, unbind), as radmfa's user check
    /// did before 28757c0; it now reuses bind-only connections, so this is the cost saved.
    ConnectBind,
}

/// The longest one connect and bind of [`ldap_binds`] may take.
const BIND_LIMIT: Duration = Duration::from_secs(5);

/// What a bind that the directory refused is called in the report (not a RADIUS code).
pub const BIND_FAILED: &str = "bind failed";

/// Simple binds as `uid=user00000,ou=people,dc=example,dc=org` … (password `pw-<uid>`, as
/// [`bench_users`] writes them) from `concurrency` workers for `duration`; the rate of
/// successful binds is the ceiling for every LDAP-bound RADIUS workload.
pub async fn ldap_binds(
    url: &str,
    users: usize,
    concurrency: usize,
    duration: Duration,
    mode: BindMode,
) -> anyhow::Result<PhaseReport> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let url = url.to_string();
        set.spawn(async move {
            let mut tally = Tally::default();
            let mut conn = None;
            let mut i = w;
            while Instant::now() < deadline {
                let name = generated_name(i % users.max(1));
                i += concurrency;
                let dn = format!("uid={name},{PEOPLE_DN}");
                let t0 = Instant::now();
                // Bounded, so a directory that stops answering (paused, firewalled) ends
                // the run soon after its duration instead of never: counted as a timeout,
                // and the connection is given up.
                let bind = async {
                    if conn.is_none() || mode == BindMode::ConnectBind {
                        let (c, ldap) = ldap3::LdapConnAsync::new(&url).await?;
                        ldap3::drive!(c);
                        conn = Some(ldap);
                    }
                    let ldap = conn.as_mut().expect("connected above");
                    anyhow::Ok(ldap.simple_bind(&dn, &generated_password(&name)).await?)
                };
                let Ok(res) = tokio::time::timeout(BIND_LIMIT, bind).await else {
                    conn = None;
                    tally.record(Outcome::Timeout, t0.elapsed());
                    continue;
                };
                let outcome = if res?.rc == 0 {
                    Outcome::Expected
                } else {
                    Outcome::Unexpected(3)
                };
                if mode == BindMode::ConnectBind {
                    if let Some(mut ldap) = conn.take() {
                        let _ = ldap.unbind().await;
                    }
                }
                tally.record(outcome, t0.elapsed());
            }
            anyhow::Ok(tally)
        });
    }
    let mut tally = Tally::default();
    while let Some(r) = set.join_next().await {
        tally.merge(r.context("bind worker panicked")??);
    }
    // Named by mode: both were "ldap-bind", and only the bench's labels told them apart.
    let phase = match mode {
        BindMode::ConnectBind => "ldap-connect-bind",
        BindMode::Bind => "ldap-bind",
    };
    let mut r = PhaseReport::new(phase, tally, start.elapsed());
    // A refused bind was tallied as a Reject: named for what it is, so neither the text nor
    // the JSON reads like a RADIUS reply.
    if let Some(n) = r.unexpected.remove(&super::report::code_name(3)) {
        r.unexpected.insert(BIND_FAILED.into(), n);
    }
    Ok(r)
}

/// The text report of [`ldap_binds`]: successful binds per second first (the ceiling the
/// benchmark compares with; failures are not throughput), and only the fields a bind has
/// (no retransmits, nothing forged).
pub fn bind_text(r: &PhaseReport) -> String {
    let failed = r.unexpected.get(BIND_FAILED).copied().unwrap_or(0);
    let latency = r.latencies().unwrap_or_else(|| "-".to_string());
    format!(
        "{}: {} binds in {:.2} s: {:.0} successful binds/s\n  latency ms (successful binds): \
         {latency}\n  successful {}  {BIND_FAILED} {failed}  timeouts {}",
        r.phase, r.sent, r.seconds, r.ok_per_sec, r.expected, r.timeouts
    )
}
