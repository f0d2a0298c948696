//! radmfa's own RADIUS client (`radmfa client …`): an interactive login for admins checking a
//! deployment, and a load generator for benchmarks. radclient cannot follow an
//! Access-Challenge and pyrad manages about 3k requests/s per process, so neither can drive
//! a two-round MFA benchmark.
//!
//! - [`login`]: one login, prompting for the code at a challenge.
//! - [`load`]: C in flight, count/duration/rate, inline, two-round, reject and Status-Server
//!   flows, TOTP codes from the users' seeds, every reply verified.
//! - [`users`], [`verify`], [`report`]: the users file, reply checks, percentiles.
//! - [`bench`]: hidden helpers for `bench/run.sh` (bulk users, raw LDAP bind rate).

pub mod bench;
pub mod histogram;
pub mod load;
pub mod login;
pub mod radsec;
pub mod report;
pub mod users;
pub mod verify;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::secret::Secret;
use crate::store::OtpAlgorithm;
use load::{Flow, LoadSpec, TotpParams};
use verify::Verify;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Log a user in as a NAS would, prompting for the code at an Access-Challenge.
    ///
    /// For an otp_mode = "inline" client, give the password and the code together as the
    /// password (password,123456, with the client's inline_delimiter): such a client never
    /// challenges, and refuses the password alone with a bare Access-Reject. For a
    /// code_only client, give the code alone.
    Login(LoginArgs),
    /// Send a Status-Server probe (RFC 5997).
    Status(StatusArgs),
    /// Drive load: many users, C in flight; prints requests/s and latency percentiles.
    Load(LoadArgs),
    /// Benchmark set-up: N users as users.csv + users.ldif, seeds enrolled in the store.
    #[command(hide = true)]
    BenchUsers(BenchUsersArgs),
    /// Benchmark: raw LDAP simple-bind rate of a directory, binding as the users
    /// bench-users writes: uid=user00000,ou=people,dc=example,dc=org … with password
    /// pw-user00000 … (fixed names; other directories' users fail to bind).
    #[command(hide = true)]
    LdapBinds(LdapBindsArgs),
}

#[derive(Debug, Args)]
pub struct Target {
    /// RADIUS server, e.g. 127.0.0.1:1812, [::1]:1812 or radius1.example.org (the port,
    /// when left out, is 1812, or 2083 over RadSec; a name is looked up once, its IPv4
    /// address used if it has one, as a server's [[client]] entry names one source
    /// address; over RadSec the name is the one the certificate must carry, unless
    /// --radsec-server-name says another) [default: 127.0.0.1].
    #[arg(long, short = 's', value_parser = parse_server)]
    pub server: Option<String>,
    /// Shared secret (prefer --secret-file or RADMFA_SECRET: argv is visible to others).
    /// RADMFA_SECRET, from the environment, is used only when neither flag is given, and
    /// not over RadSec (whose secret is "radsec" unless one of the flags says otherwise).
    #[arg(long)]
    pub secret: Option<String>,
    #[arg(long, conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,
    /// NAS-Identifier to send.
    #[arg(long)]
    pub nas_identifier: Option<String>,
    /// Seconds to wait for each reply (0.001 to 3600).
    #[arg(long, default_value_t = 3.0, value_parser = parse_timeout)]
    pub timeout: f64,
    /// Retransmissions after a timeout.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// strict: Message-Authenticator first and valid (radmfa, hardened servers); lenient:
    /// authenticators checked wherever the attribute is (e.g. FreeRADIUS 3.2.1); signed:
    /// lenient, but a reply without Message-Authenticator is refused.
    #[arg(long, value_enum, default_value_t = Verify::Strict)]
    pub verify: Verify,
}

impl Target {
    /// --server, or the port of the transport the request goes over: RadSec's help says
    /// "to --server (port 2083)", and a default of :1812 sent TLS to the UDP port.
    fn server(&self, radsec: &radsec::RadsecArgs) -> anyhow::Result<SocketAddr> {
        let default_port = if radsec.enabled() { 2083 } else { 1812 };
        let Some(given) = &self.server else {
            return Ok(SocketAddr::from(([127, 0, 0, 1], default_port)));
        };
        let (host, port) = split_host_port(given);
        let port = port.map_or(Ok(default_port), str::parse)?;
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        use std::net::ToSocketAddrs;
        let found: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("--server {given}: looking up {host:?}"))?
            .collect();
        // IPv4 first: `localhost` is often ::1 first, and the server's [[client]] entry
        // for this host is most often its IPv4 address; a request from ::1 would be
        // dropped unanswered.
        found
            .iter()
            .find(|a| a.is_ipv4())
            .or(found.first())
            .copied()
            .ok_or_else(|| anyhow::anyhow!("--server {given}: {host:?} has no address"))
    }

    /// RadSec's settings, with `--server`'s host name as the name the server's certificate
    /// must carry when `--radsec-server-name` gives none: a certificate is issued to the
    /// name, and checked against the address it failed.
    fn radsec(&self, radsec: &radsec::RadsecArgs) -> radsec::RadsecArgs {
        let mut r = radsec.clone();
        let host = self.server.as_deref().map(|s| split_host_port(s).0);
        if r.radsec_server_name.is_none() {
            r.radsec_server_name = host
                .filter(|h| h.parse::<std::net::IpAddr>().is_err())
                .map(str::to_string);
        }
        r
    }

    fn secret(&self) -> anyhow::Result<Secret> {
        // The flags conflict with each other; the environment is read only without them, so
        // a variable left from another NAS never overrides the file or secret named here.
        // An empty secret cannot hide a password (RFC 2865 §5.2): refused here, naming its
        // source, rather than found by the packet encoder as a panic.
        match (&self.secret, &self.secret_file) {
            (_, Some(f)) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                // As the server reads a `secret_file`: the same file works for both.
                let first = crate::config::validate::secret_file_value(&text);
                anyhow::ensure!(
                    !first.is_empty(),
                    "--secret-file {}: the first line (the shared secret) is empty",
                    f.display()
                );
                Ok(Secret::from(first))
            }
            (Some(s), None) => {
                anyhow::ensure!(!s.is_empty(), "--secret: the shared secret is empty");
                Ok(Secret::from(s.as_str()))
            }
            (None, None) => match env_secret() {
                Some(s) => Ok(s),
                None => anyhow::bail!(
                    "give the shared secret: --secret-file, RADMFA_SECRET or --secret"
                ),
            },
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.max(0.001))
    }

    /// RFC 2865 §5.32: NAS-Identifier is 1 to 253 octets; a longer one cannot be encoded and
    /// would otherwise surface as a panic when the first request is built.
    fn nas_identifier(&self) -> anyhow::Result<Option<String>> {
        if let Some(nas) = &self.nas_identifier {
            anyhow::ensure!(
                (1..=253).contains(&nas.len()),
                "--nas-identifier: {} octets; RADIUS carries 1 to 253",
                nas.len()
            );
        }
        Ok(self.nas_identifier.clone())
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub radsec: radsec::RadsecArgs,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub radsec: radsec::RadsecArgs,
    pub user: String,
    /// Password (asked without echo when absent, which is best: argv is visible to other
    /// users and kept in shell history; RADMFA_PASSWORD is read too). For an inline client,
    /// the password and the code: password,123456.
    #[arg(long, env = "RADMFA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Answer(s) to challenges, in order, instead of asking (for scripts). Like --password,
    /// argv is visible to other users while it runs; a code is good once, but until it is
    /// used someone watching could race it in: type it at the prompt where you can.
    #[arg(long)]
    pub code: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub radsec: radsec::RadsecArgs,
    #[arg(long, value_enum, default_value_t = Flow::Inline)]
    pub flow: Flow,
    /// File of user,password,base32-seed lines (needed for flows that send codes).
    #[arg(long, conflicts_with = "generated")]
    pub users: Option<PathBuf>,
    /// Use N generated users user00000/pw-user00000 … (no seeds).
    #[arg(long)]
    pub generated: Option<usize>,
    /// Only users START:END (0-based, END exclusive) of the list. Separate runs against a
    /// server with a replay guard need disjoint ranges: codes a run used cannot be used again.
    #[arg(long, value_parser = parse_range)]
    pub range: Option<(usize, usize)>,
    /// Requests in flight (-p as in radclient; -c is the global --config). Over RadSec each
    /// is a connection of its own: keep it within the server's connections per address
    /// (radmfa's [radsec] max_connections_per_address, 16 by default).
    #[arg(long, short = 'p', default_value_t = 100)]
    pub concurrency: usize,
    /// Stop after this many requests (round 1 of two-round, which keeps every State for
    /// round 2 and so stops at 4,000,000 however long it may run).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Stop after this many seconds (two-round: each round; States round 2 has no time
    /// for count as skipped).
    #[arg(long, short = 'd')]
    pub duration: Option<f64>,
    /// Requests per second across all workers (default: as fast as replies come).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Delimiter between password and code in the inline flow.
    #[arg(long, default_value = ",")]
    pub delimiter: String,
    /// The server's TOTP window (± steps); more steps let a user log in more often.
    #[arg(long, default_value_t = 1)]
    pub totp_window: u32,
    #[arg(long, default_value_t = 30)]
    pub totp_period: u32,
    #[arg(long, default_value_t = 6)]
    pub totp_digits: u32,
    /// The tokens' hash, as the server's `[totp] algorithm`: sha1, sha256 or sha512.
    #[arg(long, default_value = "sha1", value_parser = parse_algorithm)]
    pub totp_algorithm: OtpAlgorithm,
    /// The server accepts a code again (no used-step record), so always send the current one.
    #[arg(long)]
    pub no_replay_guard: bool,
    /// Worker threads of the generator's own runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Send from this local address (e.g. 127.0.0.2 to appear as a second NAS).
    #[arg(long)]
    pub source: Option<std::net::IpAddr>,
    /// Print JSON lines (one per phase) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 if in any phase more than this share of the requests (0 to 1) timed out,
    /// found nothing listening, got a reply of another code than expected, or were never
    /// sent because the users had no unused TOTP step left or (with --rate) no worker was
    /// free when they came due, or were still unanswered after a second or more when the
    /// run ended while 99 % of the answers came within 100 ms (lost). Exit 1 always on a
    /// reply that failed verification, a phase with no expected reply at all, or one whose
    /// server answered nothing in its last second while requests had waited a second or
    /// more (it stopped answering).
    #[arg(long, default_value_t = 0.01)]
    pub max_error_ratio: f64,
}

#[derive(Debug, Args)]
pub struct BenchUsersArgs {
    #[arg(long)]
    pub count: usize,
    /// Directory for users.csv and users.ldif.
    #[arg(long)]
    pub out: PathBuf,
    /// Also enroll the seeds as tokens BENCH-user00000 … in the store of --config (or
    /// RADMFA_CONFIG), which must be given and must hold no BENCH- tokens yet; one audit
    /// record (`import`) says so. For a benchmark's own store, never a live one.
    #[arg(long)]
    pub enroll: bool,
    #[arg(long, default_value_t = 30)]
    pub period: u32,
}

#[derive(Debug, Args)]
pub struct LdapBindsArgs {
    #[arg(long)]
    pub url: String,
    /// Bind as uid=user00000,ou=people,dc=example,dc=org … uid=user<N-1>,… with password
    /// pw-user00000 … (the DN and password pattern is fixed: bench-users's users).
    #[arg(long)]
    pub users: usize,
    #[arg(long, short = 'p', default_value_t = 100)]
    pub concurrency: usize,
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, value_enum, default_value_t = bench::BindMode::Bind)]
    pub mode: bench::BindMode,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 if more than this share of the binds (0 to 1) failed or timed out, or none
    /// succeeded, as `load` does.
    #[arg(long, default_value_t = 0.01)]
    pub max_error_ratio: f64,
}

/// Runs a `radmfa client …` command. `config`, the file --config or RADMFA_CONFIG named
/// (`None` for the default), is read only by `bench-users --enroll`.
pub async fn run(config: Option<&Path>, cmd: ClientCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Login(a) => {
            let spec = login_spec(&a.target, &a.radsec, a.user.clone())?;
            let mut term = login::Terminal {
                // RADMFA_PASSWORD= (set but empty, a script's unset variable) asks, as no
                // password given does, rather than sending an empty one.
                password: a.password.filter(|p| !p.is_empty()).map(Secret::from),
                codes: a.code.into_iter().map(Secret::from).collect(),
            };
            Ok(match login::login(&spec, &mut term).await? {
                login::LoginResult::Accepted => ExitCode::SUCCESS,
                login::LoginResult::Rejected => ExitCode::from(1),
            })
        }
        ClientCommand::Status(a) => {
            let rtt = login::probe(&login_spec(&a.target, &a.radsec, String::new())?).await?;
            println!("Access-Accept in {:.2} ms", rtt.as_secs_f64() * 1000.0);
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::Load(a) => {
            let threads = a.threads;
            let json = a.json;
            let max_errors = a.max_error_ratio;
            anyhow::ensure!(
                (0.0..=1.0).contains(&max_errors),
                "--max-error-ratio {max_errors}: 0 to 1"
            );
            let (spec, users) = load_spec(a)?;
            let reports = on_own_runtime(threads, async move {
                let stop = load::Stop::default();
                stop_on_ctrl_c(stop.clone())?;
                load::run(&spec, users, &stop).await
            })?;
            for r in &reports {
                if json {
                    println!("{}", serde_json::to_string(r)?);
                } else {
                    println!("{}", r.text());
                }
            }
            let mut clean = true;
            for why in reports.iter().filter_map(|r| r.failure(max_errors)) {
                clean = false;
                eprintln!("{why}");
            }
            if reports.iter().any(|r| r.interrupted) {
                die_of_sigint();
            }
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ClientCommand::BenchUsers(a) => {
            // Enrolling writes up to 100,000 tokens: never into the default configuration's
            // store (a live deployment's) because --config was forgotten.
            let cfg = match (a.enroll, config) {
                (false, _) => None,
                (true, Some(config)) => Some(Config::load(config).map_err(|e| e.in_file(config))?),
                (true, None) => anyhow::bail!(
                    "--enroll writes benchmark tokens into a store: name its configuration \
                     with --config or RADMFA_CONFIG (the default, /etc/radmfa/radmfa.toml, is \
                     not taken for it)"
                ),
            };
            bench::bench_users(a.count, &a.out, cfg.as_ref(), a.period).await?;
            Ok(ExitCode::SUCCESS)
        }
        ClientCommand::LdapBinds(a) => {
            let max_errors = a.max_error_ratio;
            anyhow::ensure!(
                (0.0..=1.0).contains(&max_errors),
                "--max-error-ratio {max_errors}: 0 to 1"
            );
            let d = Duration::from_secs_f64(a.duration.max(0.1));
            let (url, users, c, mode) = (a.url.clone(), a.users, a.concurrency, a.mode);
            let r = on_own_runtime(a.threads, async move {
                bench::ldap_binds(&url, users, c, d, mode).await
            })?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", bench::bind_text(&r));
            }
            // Mostly failed binds (wrong directory, users not loaded) are no ceiling: said,
            // and exit 1 as `load` does, so bench/run.sh stops rather than compares with it.
            Ok(match r.failure(max_errors) {
                Some(why) => {
                    eprintln!("{why}");
                    ExitCode::from(1)
                }
                None => ExitCode::SUCCESS,
            })
        }
    }
}

fn parse_algorithm(s: &str) -> Result<OtpAlgorithm, String> {
    OtpAlgorithm::parse(s).ok_or_else(|| format!("{s:?}: use sha1, sha256 or sha512"))
}

/// `--server` as given: an address, or a host name, each with or without a port
/// (`localhost`, `radius1.example.org:1812`, `[::1]:1812`, `10.0.0.5`), as radclient takes
/// one. The port left out is the transport's, and a name is looked up when the request is
/// sent ([`Target::server`]).
fn parse_server(s: &str) -> Result<String, String> {
    let (host, port) = split_host_port(s);
    // `::1:1812` is all host (an IPv6 address holds colons), and was looked up as a name:
    // "Name or service not known". Its port goes after the bracketed address.
    if port.is_none() && host.contains(':') && host.parse::<std::net::IpAddr>().is_err() {
        if let Some((addr, port)) = host.rsplit_once(':') {
            if addr.parse::<std::net::Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok() {
                return Err(format!(
                    "{s:?}: an IPv6 address with a port is written [{addr}]:{port}"
                ));
            }
        }
    }
    if host.is_empty() || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(format!(
            "{s:?}: give an address or a host name, with a port if not the transport's \
             (radius1.example.org:1812, [::1]:1812)"
        ));
    }
    Ok(s.to_string())
}

/// `host` and its port, if given: `[::1]:1812`, `10.0.0.5:1645`, `name:1812`; an IPv6
/// address without brackets is all host.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => ("", None),
        };
    }
    match s.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (s, None),
    }
}

/// A finite wait: `inf` or `1e30` would overflow the Duration it becomes (a panic).
fn parse_timeout(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if v.is_finite() && (0.001..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s}: 0.001 to 3600 seconds"))
    }
}

fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once(':').ok_or("use START:END")?;
    let num = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    Ok((num(a)?, num(b)?))
}

fn login_spec(
    t: &Target,
    radsec: &radsec::RadsecArgs,
    user: String,
) -> anyhow::Result<login::LoginSpec> {
    Ok(login::LoginSpec {
        server: t.server(radsec)?,
        radsec: radsec.enabled().then(|| t.radsec(radsec)),
        secret: secret_for(t, radsec)?,
        user,
        nas_identifier: t.nas_identifier()?,
        timeout: t.timeout(),
        retries: t.retries,
        verify: t.verify,
    })
}

/// The shared secret: `--secret`/`--secret-file`, or over RadSec "radsec" (RFC 6614 §2.3:
/// unless agreed otherwise) when neither is given. RADMFA_SECRET is for UDP only: an admin
/// who exported a NAS's secret for UDP checks signed RadSec requests with it, radmfa's
/// RadSec listener (always "radsec") closed the connection, and the error said nothing of
/// the secret.
fn secret_for(t: &Target, radsec: &radsec::RadsecArgs) -> anyhow::Result<Secret> {
    match (radsec.enabled(), &t.secret, &t.secret_file) {
        (true, None, None) => Ok(Secret::from(crate::server::radsec::RADSEC_SECRET)),
        _ => t.secret(),
    }
}

/// RADMFA_SECRET, if set and not empty.
fn env_secret() -> Option<Secret> {
    std::env::var("RADMFA_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(Secret::from)
}

fn load_spec(a: LoadArgs) -> anyhow::Result<(LoadSpec, Arc<Vec<users::LoadUser>>)> {
    let mut users = match (&a.users, a.generated) {
        (Some(path), _) => users::load(path)?,
        (None, Some(n)) if n > 0 => users::generate(n),
        // Status-Server names no user: BENCHMARKS.md's `--flow status -p 64 -d 4` was
        // refused for want of one.
        (None, None) if a.flow == Flow::Status => users::generate(1),
        (None, Some(_)) => anyhow::bail!("--generated 0: give 1 or more users"),
        (None, None) => anyhow::bail!("give --users FILE or --generated N"),
    };
    if let Some((start, end)) = a.range {
        // An empty range is its own mistake: "outside the 200 users" sent admins counting.
        anyhow::ensure!(
            start < end,
            "--range {start}:{end} is empty (END is exclusive: it must be above START)"
        );
        anyhow::ensure!(
            end <= users.len(),
            "--range {start}:{end} is outside the {} users",
            users.len()
        );
        users.truncate(end);
        users.drain(..start);
    }
    anyhow::ensure!(
        a.count.is_some() || a.duration.is_some(),
        "give --count and/or --duration: load runs are bounded"
    );
    // As --duration 0 is: a run of no requests measured nothing and then failed.
    anyhow::ensure!(a.count != Some(0), "--count 0: at least 1 request");
    // Codes of steps the server does not look at are wrong codes to it, and each counts
    // towards the user's lockout: radmfa's [totp] window is at most 10.
    anyhow::ensure!(
        a.totp_window <= 10,
        "--totp-window {}: 0 to 10 (the server's [totp] window; codes outside it are \
         refused as wrong, and count towards the user's lockout)",
        a.totp_window
    );
    if let Some(d) = a.duration {
        // Refused up front as --rate 0 is: a run of no time sends nothing and failed with
        // a confusing line.
        anyhow::ensure!(
            d.is_finite() && d > 0.0 && d <= 604_800.0,
            "--duration {d}: more than 0, up to 604800 seconds (a week)"
        );
    }
    if let Some(r) = a.rate {
        anyhow::ensure!(
            r.is_finite() && (0.001..=10_000_000.0).contains(&r),
            "--rate {r}: 0.001 to 10000000 requests per second"
        );
    }
    if a.flow == Flow::TwoRound {
        // Round 1 keeps every State: a run that would need more than the cap is refused here
        // rather than cut short without being asked.
        let bound = match (a.count, a.duration, a.rate) {
            (Some(n), _, _) => Some((n as f64, "--count")),
            (None, Some(d), Some(r)) => Some((d * r, "--duration × --rate")),
            _ => None,
        };
        if let Some((n, what)) = bound.filter(|(n, _)| *n > load::MAX_STATES as f64) {
            anyhow::bail!(
                "{what}: {n:.0} round-1 requests; two-round keeps every State for round 2, \
                 at most {}",
                load::MAX_STATES
            );
        }
    }
    // With a replay guard, two requests of one user in flight at once may arrive out of
    // order, and the server rightly refuses the earlier step as a replay: more requests in
    // flight than users made the generator's own codes count as the server's failures
    // ("code already used"). Workers beyond -n never send, so they do not count.
    let in_flight = (a.concurrency as u64).min(a.count.unwrap_or(u64::MAX));
    if matches!(a.flow, Flow::Inline | Flow::TwoRound)
        && !a.no_replay_guard
        && in_flight > users.len() as u64
    {
        anyhow::bail!(
            "-p {in_flight} requests in flight for {} users: two codes of one user in flight \
             at once can arrive out of order, and the server refuses the earlier one as a \
             replay; give at least as many users as -p (more is better), or a lower -p",
            users.len()
        );
    }
    anyhow::ensure!(
        (1..=3600).contains(&a.totp_period),
        "--totp-period {}: 1 to 3600 seconds",
        a.totp_period
    );
    anyhow::ensure!(
        (6..=8).contains(&a.totp_digits),
        "--totp-digits {}: 6 to 8",
        a.totp_digits
    );
    // What each request carries in User-Password (password, delimiter, code) must fit the
    // attribute's 128 octets, and the name its 253: checked here, not found by a worker.
    let too_long = users.iter().find(|u| {
        u.name.is_empty()
            || u.name.len() > 253
            || u.password.expose().len() + a.delimiter.len() + a.totp_digits as usize > 128
    });
    if let Some(u) = too_long {
        anyhow::bail!(
            "user {:?}: the name must be 1 to 253 octets, and password, delimiter and code \
             together at most 128",
            crate::admin::printable(&u.name)
        );
    }
    let spec = LoadSpec {
        server: a.target.server(&a.radsec)?,
        secret: secret_for(&a.target, &a.radsec)?,
        flow: a.flow,
        concurrency: a.concurrency,
        count: a.count,
        duration: a.duration.map(|d| Duration::from_secs_f64(d.max(0.0))),
        rate: a.rate.filter(|r| *r > 0.0),
        timeout: a.target.timeout(),
        retries: a.target.retries,
        delimiter: a.delimiter,
        totp: TotpParams {
            algorithm: a.totp_algorithm,
            digits: a.totp_digits,
            period: a.totp_period,
            window: a.totp_window,
            replay_guard: !a.no_replay_guard,
        },
        verify: a.target.verify,
        nas_identifier: a.target.nas_identifier()?,
        source: a.source,
        radsec: match a.radsec.enabled() {
            true => Some(radsec::tls(&a.target.radsec(&a.radsec))?),
            false => None,
        },
    };
    Ok((spec, Arc::new(users)))
}

/// The first Ctrl-C (SIGINT) stops the load run, which then reports what it counted; a
/// second ends the process at once, as Ctrl-C did before. Registered before the run starts
/// (inside its runtime), so a Ctrl-C at any time during it is caught.
fn stop_on_ctrl_c(stop: load::Stop) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("catching Ctrl-C (SIGINT)")?;
    tokio::spawn(async move {
        if sigint.recv().await.is_some() {
            eprintln!(
                "Ctrl-C: stopping; replies in flight are waited for briefly, then the counts \
                 so far are reported (Ctrl-C again to quit at once)"
            );
            stop.stop();
        }
        if sigint.recv().await.is_some() {
            die_of_sigint();
        }
    });
    Ok(())
}

/// Ends the process as Ctrl-C ends a command, once the report is out: killed by SIGINT, not
/// exiting 130, so that a shell running a script of loads (bench/run.sh) stops the script
/// too. With a plain exit(130) bash went on to the next command.
fn die_of_sigint() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: resetting SIGINT's disposition (tokio's handler caught the first) and raising
    // it; nothing of this process is needed after, and exit(130) follows should the
    // signal not end it.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::raise(libc::SIGINT);
    }
    std::process::exit(130)
}

/// Runs `fut` on a runtime of its own with `threads` workers, so a benchmark can keep the
/// generator small next to the server it measures on the same cores.
fn on_own_runtime<T: Send + 'static>(
    threads: usize,
    fut: impl std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    let handle = std::thread::spawn(move || {
        let rt = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .build()?
        };
        rt.block_on(fut)
    });
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("load runtime panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(subcommand)]
        client: ClientCommand,
    }

    fn server_of(args: &[&str]) -> SocketAddr {
        let argv = std::iter::once("radmfa").chain(args.iter().copied());
        match Cmd::try_parse_from(argv).unwrap().client {
            ClientCommand::Status(a) => {
                login_spec(&a.target, &a.radsec, String::new())
                    .unwrap()
                    .server
            }
            other => panic!("{other:?}"),
        }
    }

    /// The RadSec options that make a client speak RadSec (the files are not read here).
    const TLS: [&str; 6] = [
        "--radsec-cert",
        "c",
        "--radsec-key",
        "k",
        "--radsec-ca",
        "a",
    ];

    /// RadSec options without --server go to RadSec's port, 2083, as the help says; they
    /// went to 1812 ("RadSec connection to 127.0.0.1:1812: Connection refused").
    #[test]
    fn radsec_defaults_to_port_2083() {
        let mut args = vec!["status"];
        args.extend(TLS);
        assert_eq!(server_of(&args), "127.0.0.1:2083".parse().unwrap());
        args.extend(["--server", "10.0.0.1:3000"]);
        assert_eq!(server_of(&args), "10.0.0.1:3000".parse().unwrap());
        assert_eq!(
            server_of(&["status", "--secret", "s"]),
            "127.0.0.1:1812".parse().unwrap()
        );
    }

    /// A host name, as radclient takes one; `localhost:1812` was refused as "invalid
    /// socket address syntax".
    #[test]
    fn a_server_may_be_named() {
        let a = server_of(&["status", "--secret", "s", "-s", "localhost:1645"]);
        assert!(a.ip().is_loopback() && a.port() == 1645, "{a}");
        assert!(a.is_ipv4(), "IPv4 first: {a}");
        // The port left out is the transport's.
        let a = server_of(&["status", "--secret", "s", "-s", "localhost"]);
        assert_eq!(a, "127.0.0.1:1812".parse().unwrap());
        let a = server_of(&["status", "--secret", "s", "-s", "::1"]);
        assert_eq!(a, "[::1]:1812".parse().unwrap());
        let a = server_of(&["status", "--secret", "s", "-s", "[::1]:1645"]);
        assert_eq!(a, "[::1]:1645".parse().unwrap());
        let argv = ["radmfa", "status", "-s", "::1:26210"];
        let err = Cmd::try_parse_from(argv).err().unwrap().to_string();
        assert!(err.contains("is written [::1]:26210"), "{err}");
        for bad in ["localhost:radius", "[::1", ":1812"] {
            let argv = ["radmfa", "status", "-s", bad];
            let err = Cmd::try_parse_from(argv).err().expect(bad).to_string();
            assert!(err.contains("give an address or a host name"), "{err}");
        }
    }

    /// Over RadSec, the host name is the name the certificate is checked for, unless
    /// --radsec-server-name says another; an address is checked as itself.
    #[test]
    fn over_radsec_the_server_name_is_the_certificates() {
        let name = |server: &str, extra: &[&str]| {
            let argv = [&["radmfa", "status", "-s", server][..], &TLS, extra].concat();
            match Cmd::try_parse_from(argv).unwrap().client {
                ClientCommand::Status(a) => {
                    let spec = login_spec(&a.target, &a.radsec, String::new()).unwrap();
                    assert_eq!(spec.server.port(), 2083);
                    spec.radsec.unwrap().radsec_server_name
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(name("localhost", &[]).as_deref(), Some("localhost"));
        let other = ["--radsec-server-name", "radius.example.org"];
        assert_eq!(
            name("localhost", &other).as_deref(),
            Some("radius.example.org")
        );
        assert_eq!(name("127.0.0.1", &[]), None);
    }
}
