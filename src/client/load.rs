//! The load generator: C workers, each with its own UDP socket (or RadSec connection) and
//! one request in flight (closed loop, like C NAS boxes waiting on their users), optionally
//! paced to a global rate, stopped by a count and/or a duration. Every reply is verified
//! before it counts. Over RadSec the connections are opened before the clock starts and kept
//! for both rounds, as a RadSec proxy keeps its connections.
//!
//! Two-round logins run as two phases so each is measured on its own: phase `round1` sends
//! passwords and keeps the States of the challenges it gets; phase `round2` then answers every
//! State with a code. This is also how the FreeRADIUS baseline in shared/testing.md was taken.
//!
//! TOTP and replays: radmfa refuses a step a token has already used, so the generator hands
//! each user strictly increasing steps from the window the server accepts
//! ([`LoadUser::claim_step`]), from `window − 1` steps back to as many ahead. A user can
//! therefore log in `2·window − 1` times at once, then once per new step. Give the run many more users than requests in flight: two
//! requests of one user in flight at once may arrive out of order, and the server then
//! refuses the earlier step as a replay. With `--no-replay-guard` (servers that keep no
//! used-step record, such as FreeRADIUS 3.2.1's rlm_totp) every request uses the current step.
//! Now and then (about one code in 25,000 at 6 digits and window 10) a code is also the code
//! of a step the same user sent moments before; radmfa refuses it as the replay it could be. Such a Reject is counted
//! apart, as a repeated code ([`repeats_earlier`]), not as the server's failure.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::radsec::Link;
use super::report::{Outcome, PhaseReport, Tally};
use super::users::LoadUser;
use super::verify::{check, Failure, Verify};
use crate::mfa::otp::totp_code;
use crate::radius::client::{parse_reply, status_server, AccessRequestBuilder};
use crate::secret::Secret;
use crate::store::OtpAlgorithm;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flow {
    /// `password<delim>code` in one request; expects Access-Accept.
    Inline,
    /// Password only; expects Access-Challenge, never answered (fills pending challenges).
    Round1,
    /// Round 1 for every login, then round 2 (State + code) for every challenge received.
    TwoRound,
    /// A wrong password for a real user; expects Access-Reject.
    Reject,
    /// Status-Server (RFC 5997); expects Access-Accept.
    Status,
}

/// How codes are made and which steps the server will take.
#[derive(Debug, Clone)]
pub struct TotpParams {
    pub algorithm: OtpAlgorithm,
    pub digits: u32,
    pub period: u32,
    /// The server's window: it accepts steps within ±window of its current step.
    pub window: u32,
    /// The server refuses a step already used (radmfa does; FreeRADIUS 3.2.1 does not).
    pub replay_guard: bool,
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub server: SocketAddr,
    pub secret: Secret,
    pub flow: Flow,
    pub concurrency: usize,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Requests per second across all workers; `None` = as fast as replies come back.
    pub rate: Option<f64>,
    pub timeout: Duration,
    pub retries: u32,
    pub delimiter: String,
    pub totp: TotpParams,
    pub verify: Verify,
    pub nas_identifier: Option<String>,
    /// Local address to send from (the server's client table is keyed by source address;
    /// 127.0.0.2 can be a second NAS with another policy on the same machine).
    pub source: Option<IpAddr>,
    /// RadSec (TLS) instead of UDP, with this client configuration.
    pub radsec: Option<super::radsec::Tls>,
}

/// Round-1 requests of a two-round run, and so States kept for round 2 (each some 80 bytes
/// with its allocation: about 320 MB at most).
pub const MAX_STATES: u64 = 4_000_000;

/// Ends a run early (Ctrl-C): no request is sent after it, the ones in flight get
/// [`END_GRACE`] for their replies and are then counted as cut off, a two-round run does
/// not start round 2, and the phases so far are reported, marked as interrupted. Before,
/// SIGINT killed the process and a long run's counts were lost with it.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    at: Arc<OnceLock<Instant>>,
}

impl Stop {
    pub fn stop(&self) {
        let _ = self.at.set(Instant::now());
        self.token.cancel();
    }

    /// When the run was stopped, if it was.
    pub fn at(&self) -> Option<Instant> {
        self.at.get().copied()
    }

    async fn stopped(&self) {
        self.token.cancelled().await
    }

    /// Resolves [`END_GRACE`] after the stop: requests in flight then are given up on.
    async fn grace_over(&self) {
        self.stopped().await;
        if let Some(at) = self.at() {
            tokio::time::sleep_until((at + END_GRACE).into()).await;
        }
    }
}

/// One worker's line to the server.
enum Conn {
    Udp(UdpSocket),
    /// `None` after a failure or a timeout (the stream may be mid-packet): the next request
    /// opens a new connection.
    Tls(Option<Box<Link>>),
}

/// Hands out request numbers until the count, the deadline or the list of answers runs out,
/// and says when each is due under `--rate`.
struct Schedule {
    start: Instant,
    issued: AtomicU64,
    limit: u64,
    deadline: Option<Instant>,
    rate: Option<f64>,
    stop: Stop,
    /// When a worker last came back from waiting for a TOTP step (nanoseconds after
    /// `start`; 0 = none has waited): with a rate, latency counts from then at the
    /// earliest ([`Schedule::late`]).
    resumed: AtomicU64,
    /// Under `--rate`, the next request was due after the deadline: the run was paced to
    /// its end, and lasted until it however early the last reply came.
    paced_to_end: AtomicBool,
}

impl Schedule {
    fn new(limit: u64, duration: Option<Duration>, rate: Option<f64>, stop: Stop) -> Self {
        let start = Instant::now();
        Schedule {
            start,
            issued: AtomicU64::new(0),
            limit,
            deadline: duration.map(|d| start + d),
            rate,
            stop,
            resumed: AtomicU64::new(0),
            paced_to_end: AtomicBool::new(false),
        }
    }

    /// A worker is back from waiting for a TOTP step: the generator, not the server, held
    /// back whatever came due meanwhile.
    fn resumed_now(&self) {
        let since = self.start.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.resumed.fetch_max(since, Ordering::Relaxed);
    }

    /// How late a request due at `due` goes out now, counted from its due time or from the
    /// last return from a wait for a TOTP step, whichever is later. Every worker waits for
    /// a step when the users have used theirs, and the requests that came due meanwhile
    /// were taken late through no fault of the server: charged with the wait, round 2 of
    /// a `--rate` run showed p90 11 s against p90 8 ms without --rate.
    fn late(&self, due: Instant) -> Duration {
        let resumed = self.start + Duration::from_nanos(self.resumed.load(Ordering::Relaxed));
        Instant::now().saturating_duration_since(due.max(resumed))
    }

    fn expired(&self) -> bool {
        self.stop.at().is_some() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// When the phase ended or will end: its deadline, or the stop if that came first.
    fn end(&self) -> Option<Instant> {
        match (self.deadline, self.stop.at()) {
            (Some(d), Some(s)) => Some(d.min(s)),
            (d, s) => d.or(s),
        }
    }

    /// The next request number and, with a rate, when it was due.
    async fn next(&self) -> Option<(u64, Option<Instant>)> {
        if self.expired() {
            return None;
        }
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        if i >= self.limit {
            return None;
        }
        let mut due = None;
        if let Some(rate) = self.rate {
            let at = self.start + Duration::from_secs_f64(i as f64 / rate);
            // Due after the deadline: not sent, and not slept for. Every worker takes a
            // number at once, so sleeping first held a run of `-d 3 --rate 2 -p 100` for
            // 50 s (and kept round 2 waiting while round 1's States aged).
            if self.deadline.is_some_and(|d| at >= d) {
                self.paced_to_end.store(true, Ordering::Relaxed);
                return None;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {}
                () = self.stop.stopped() => return None,
            }
            due = Some(at);
        }
        Some((i, due))
    }
}

/// One phase's shared inputs.
struct Phase {
    spec: LoadSpec,
    users: Arc<Vec<LoadUser>>,
    /// Round 2 only: (user index, State) per request number.
    answers: Vec<(usize, Vec<u8>)>,
    round2: bool,
    schedule: Schedule,
    /// Requests built so far, across workers: how many logins the users had in them when
    /// they first ran out of TOTP steps (`ran_out_after`).
    built: AtomicU64,
    /// `built` when a request first had to wait for a TOTP step; `u64::MAX` until then.
    ran_out_after: AtomicU64,
}

impl Phase {
    fn new(
        spec: &LoadSpec,
        users: Arc<Vec<LoadUser>>,
        answers: Vec<(usize, Vec<u8>)>,
        round2: bool,
        schedule: Schedule,
    ) -> Self {
        Phase {
            spec: spec.clone(),
            users,
            answers,
            round2,
            schedule,
            built: AtomicU64::new(0),
            ran_out_after: AtomicU64::new(u64::MAX),
        }
    }
}

/// What a worker hands back: its tally and, in round 1 of a two-round run, the States.
type WorkerResult = (Tally, Vec<(usize, Vec<u8>)>, Conn);

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs the flow and returns one report per phase; `stop` ends it early, and the phase it
/// ended is reported as interrupted (and is the last).
pub async fn run(
    spec: &LoadSpec,
    users: Arc<Vec<LoadUser>>,
    stop: &Stop,
) -> anyhow::Result<Vec<PhaseReport>> {
    anyhow::ensure!(!users.is_empty(), "no users");
    anyhow::ensure!(spec.concurrency > 0, "concurrency must be at least 1");
    let needs_seed = matches!(spec.flow, Flow::Inline | Flow::TwoRound);
    if let Some(u) = users
        .iter()
        .find(|u| u.seed.is_none())
        .filter(|_| needs_seed)
    {
        use clap::ValueEnum;
        let flow = spec.flow.to_possible_value();
        anyhow::bail!(
            "--flow {} needs a TOTP seed for every user: {:?} has none (a \
             user,password,base32-seed line in --users FILE)",
            flow.as_ref().map_or("?", |v| v.get_name()),
            crate::admin::printable(&u.name)
        );
    }
    let mut limit = spec.count.unwrap_or(u64::MAX);
    if spec.flow == Flow::TwoRound {
        // Every State is kept for round 2: bounded, since a run paced only by the server's
        // speed has no bound the spec could check (`load_spec` refuses larger -n or -d × rate).
        limit = limit.min(MAX_STATES);
    }
    // Connections first: the clock (the schedule) starts when the phase is built.
    // No more than there are requests to send (`-n 5 -p 300` opened 300 sockets, and under
    // a low `ulimit -n` failed for it).
    let workers = (spec.concurrency as u64).min(limit.max(1)) as usize;
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(open(spec).await.map_err(|e| {
            // Over RadSec each worker is a connection of its own, and the server takes
            // a few from one address (16 by default): with the first ones open, the
            // certificate and the entry are fine, and the limit is the likely cause.
            let opened = conns.len();
            match (&spec.radsec, opened) {
                // Said alone: the connect's own hint for a bare close (a certificate that
                // matches no entry) would contradict it (review).
                (Some(_), 1..) => anyhow::anyhow!(
                    "opening connection {} of -p {workers} ({opened} opened: a RadSec server \
                     limits the connections from one address, radmfa by [radsec] \
                     max_connections_per_address, 16 by default; give -p {opened} or less): \
                     {}",
                    opened + 1,
                    e.root_cause()
                ),
                _ => e.context(format!("opening connection {} of -p {workers}", opened + 1)),
            }
        })?);
    }
    let first = Arc::new(Phase::new(
        spec,
        users.clone(),
        Vec::new(),
        false,
        Schedule::new(limit, spec.duration, spec.rate, stop.clone()),
    ));
    let name = match spec.flow {
        Flow::Inline => "inline",
        Flow::Round1 | Flow::TwoRound => "round1",
        Flow::Reject => "reject",
        Flow::Status => "status",
    };
    let (tally, states, elapsed, conns) = run_phase(first.clone(), conns).await?;
    let mut reports = vec![report(name, tally, elapsed, stop)];
    if spec.flow == Flow::TwoRound && stop.at().is_none() {
        // Round 2 has the same --duration of its own: without it, a server that stopped
        // answering held the run for every State × timeout × attempts (hours). The answers
        // are ordered first: the clock starts with the schedule, and sorting a long run's
        // States is the generator's time, not the server's.
        let answers = spread_by_user(states);
        // Without a replay guard every worker idles through the last BOUNDARY_MARGIN of each
        // step, and the phase's clock runs on: a round 2 of half a second (FreeRADIUS's)
        // that met it lost up to a third of its rate. A round 2 that cannot end before it
        // (it lasts at most its duration) starts with the next step instead.
        // (With nothing to answer there is nothing to wait for.)
        if !spec.totp.replay_guard && !answers.is_empty() {
            let period = f64::from(spec.totp.period.max(1));
            let left = period - unix_now().rem_euclid(period);
            let lasts = spec
                .duration
                .map_or(period, |d| d.as_secs_f64() + BOUNDARY_MARGIN);
            if left < lasts.min(period / 2.0) {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs_f64(left + 0.01)) => {}
                    () = stop.stopped() => {}
                }
            }
        }
        let schedule = Schedule::new(answers.len() as u64, spec.duration, spec.rate, stop.clone());
        let second = Arc::new(Phase::new(spec, users, answers, true, schedule));
        let (mut tally, _, elapsed, _) = run_phase(second.clone(), conns).await?;
        // Answers the deadline cut off are counted, not lost without a trace.
        let unsent = (second.answers.len() as u64).saturating_sub(tally.sent + tally.skipped);
        tally.skipped += unsent;
        reports.push(report("round2", tally, elapsed, stop));
    }
    Ok(reports)
}

/// A phase's report, marked as interrupted if the run was stopped before it ended.
fn report(name: &str, tally: Tally, elapsed: Duration, stop: &Stop) -> PhaseReport {
    let mut r = PhaseReport::new(name, tally, elapsed);
    r.interrupted = stop.at().is_some();
    r
}

/// Orders round-2 answers so that one user's answers are as far apart as possible: every
/// user's first challenge, then every user's second, and so on. Two answers of one user in
/// flight at once could arrive out of order, and the server rightly refuses the earlier
/// step as a replay — a generator artifact, not a server failure.
fn spread_by_user(mut states: Vec<(usize, Vec<u8>)>) -> Vec<(usize, Vec<u8>)> {
    let mut seen = std::collections::HashMap::<usize, usize>::new();
    let mut keyed: Vec<(usize, usize, (usize, Vec<u8>))> = states
        .drain(..)
        .map(|(u, st)| {
            let n = seen.entry(u).or_insert(0);
            *n += 1;
            (*n, u, (u, st))
        })
        .collect();
    keyed.sort_by_key(|(round, user, _)| (*round, *user));
    keyed.into_iter().map(|(_, _, a)| a).collect()
}

type PhaseResult = (Tally, Vec<(usize, Vec<u8>)>, Duration, Vec<Conn>);

async fn run_phase(phase: Arc<Phase>, conns: Vec<Conn>) -> anyhow::Result<PhaseResult> {
    let mut set = tokio::task::JoinSet::new();
    for (w, conn) in conns.into_iter().enumerate() {
        set.spawn(worker(phase.clone(), conn, w as u8));
    }
    let mut tally = Tally::default();
    let mut states = Vec::new();
    let mut conns = Vec::new();
    while let Some(res) = set.join_next().await {
        let (t, s, conn) = res.context("load worker panicked")?;
        tally.merge(t);
        states.extend(s);
        conns.push(conn);
    }
    // Up to the last verified reply: a request lost at the end waits out its timeout and
    // retransmits (9 s by default), which would otherwise count as time spent serving. But
    // not less than until the last request went out: a server that went quiet early did
    // not serve its replies in the shorter time. Nor less than until the last request was
    // given up on (up to the run's end, with a duration): a server that went quiet within
    // the last timeout × attempts held every worker waiting (nothing more was sent), and was
    // credited with a run that ended when it stopped answering; a `-n` run that ended in
    // timeouts said "5 sent in 0.00 s" after 0.3 s.
    let start = phase.schedule.start;
    let end = phase.schedule.end();
    let gave_up = tally.last_gave_up.map(|t| end.map_or(t, |end| t.min(end)));
    // Under --rate, a run whose schedule reached its deadline lasts until then (less than
    // 1/rate after its last request was due): `-n 5 -d 1 --rate 1` sends one request, and
    // ended after its few milliseconds, "1 sent in 0.00 s: 203 replies/s".
    let paced = end.filter(|_| phase.schedule.paced_to_end.load(Ordering::Relaxed));
    if let Some(end) = paced {
        tokio::select! {
            () = tokio::time::sleep_until(end.into()) => {}
            () = phase.schedule.stop.stopped() => {}
        }
    }
    // Nor less than until the last wait for a TOTP step ended: users who ran out of steps
    // held the workers idle (often to the deadline), and a rate over the few milliseconds
    // their logins took measured nothing the server did (10 logins "in 0.00 s: 2461 req/s"
    // of a 3 s run).
    let waited = tally.last_waited.map(|t| match end {
        Some(end) => t.min(end),
        None => t,
    });
    // Requests that waited a second or more when the end cut them off: how long the
    // server had been quiet then (`PhaseReport::failure` fails a run it went quiet in).
    if let (Some(end), true) = (end, tally.stalled > 0) {
        tally.quiet_at_end = Some(end.saturating_duration_since(tally.last_reply.unwrap_or(start)));
    }
    let elapsed = match tally
        .last_reply
        .max(tally.last_sent)
        .max(gave_up)
        .max(waited)
        .max(paced)
    {
        Some(t) => t.duration_since(start),
        None => start.elapsed(),
    };
    // With a rate and a duration, the requests that came due before the end but were never
    // sent (every worker waiting on a silent server) are counted as skipped, not forgotten.
    let ran_out = phase.ran_out_after.load(Ordering::Relaxed);
    tally.ran_out_after = (ran_out != u64::MAX).then_some(ran_out);
    if let (Some(rate), Some(end)) = (phase.schedule.rate, end) {
        let due = (rate * end.duration_since(start).as_secs_f64()).ceil() as u64;
        let due = due.min(phase.schedule.limit);
        let behind = due.saturating_sub(tally.sent + tally.skipped);
        tally.skipped += behind;
        tally.behind_rate += behind;
    }
    Ok((tally, states, elapsed, conns))
}

async fn open(spec: &LoadSpec) -> anyhow::Result<Conn> {
    Ok(match &spec.radsec {
        Some(tls) => Conn::Tls(Some(Box::new(
            super::radsec::connect_with(spec.server, spec.source, tls, spec.timeout).await?,
        ))),
        None => Conn::Udp(connect(spec.server, spec.source).await?),
    })
}

async fn connect(server: SocketAddr, source: Option<IpAddr>) -> anyhow::Result<UdpSocket> {
    let local: SocketAddr = match source {
        Some(ip) => (ip, 0).into(),
        None if server.is_ipv6() => "[::]:0".parse()?,
        None => "0.0.0.0:0".parse()?,
    };
    // Named by its flag: "binding a UDP socket: Cannot assign requested address" did not
    // say which address, nor that it was the one --source gave.
    let sock = UdpSocket::bind(local).await.with_context(|| match source {
        Some(ip) => format!("--source {ip}: binding a UDP socket (is it this host's address?)"),
        None => "binding a UDP socket".to_string(),
    })?;
    sock.connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    Ok(sock)
}

async fn worker(phase: Arc<Phase>, mut conn: Conn, first_id: u8) -> WorkerResult {
    let mut tally = Tally::default();
    let mut states = Vec::new();
    let mut id = first_id;
    let n = phase.users.len();
    while let Some((i, due)) = phase.schedule.next().await {
        id = id.wrapping_add(1);
        // With a rate, latency counts from when the request was due, not from when a worker
        // that fell behind got round to it: otherwise a server too slow for the rate would
        // hold the generator back and its latency would look no worse (coordinated omission).
        // Taken before any wait for a TOTP step below, and not from before the last such
        // wait of any worker ended: that wait is the generator's, not the server's.
        let late = due.map_or(Duration::ZERO, |d| phase.schedule.late(d));
        // Every user may have used up the TOTP window for now: wait for the next step and
        // send this same request then (a round-2 answer is not dropped); if the run ends
        // first, it is counted as skipped, not lost without a trace.
        // With a replay guard, a wait here means the users have used every step the server
        // would take: the generator, not the server, is holding the run back, and the report
        // says so. Without one it is the short pause at each step boundary, part of every run.
        let mut waited = false;
        let mut paused = false;
        let built = loop {
            if let Some(b) = build(&phase, i, id) {
                break Some(b);
            }
            paused = true;
            if phase.spec.totp.replay_guard && !waited {
                waited = true;
                tally.step_waits += 1;
                let so_far = phase.built.load(Ordering::Relaxed);
                let _ = phase.ran_out_after.compare_exchange(
                    u64::MAX,
                    so_far,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            if phase.schedule.expired() {
                break None;
            }
            // Short: without a replay guard every worker waits here at each step boundary,
            // and the phase's clock runs on.
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if waited {
            tally.last_waited = Some(Instant::now());
        }
        if paused {
            phase.schedule.resumed_now();
        }
        let Some(Built {
            user,
            packet,
            auth,
            step,
        }) = built
        else {
            tally.skipped += 1;
            if waited {
                tally.step_skipped += 1;
            }
            continue;
        };
        phase.built.fetch_add(1, Ordering::Relaxed);
        // When it really went out: after any wait for a TOTP step above.
        tally.last_sent = Some(Instant::now());
        let sent_at = Instant::now();
        let exchanged = async {
            match &mut conn {
                Conn::Udp(sock) => {
                    exchange(&phase.spec, sock, &packet, &auth, phase.schedule.deadline).await
                }
                Conn::Tls(link) => {
                    exchange_tls(&phase.spec, link, &packet, &auth, phase.schedule.deadline).await
                }
            }
        };
        // Stopped (Ctrl-C): a reply still on its way has a moment to arrive, then the
        // request is given up on as one the end of the run cut off. The connection is not
        // used again: a stopped run sends nothing more.
        let (outcome, latency, raw, resent) = tokio::select! {
            r = exchanged => r,
            () = phase.schedule.stop.grace_over() => {
                (Outcome::CutOff, sent_at.elapsed(), None, 0)
            }
        };
        let latency = latency + late;
        tally.retransmits += resent as u64;
        let expected = match (phase.spec.flow, phase.round2) {
            (_, true) | (Flow::Inline | Flow::Status, false) => 2,
            (Flow::Round1 | Flow::TwoRound, false) => 11,
            (Flow::Reject, false) => 3,
        };
        let outcome = match outcome {
            Outcome::Unexpected(code) if code == expected => Outcome::Expected,
            Outcome::Unexpected(3)
                if step
                    .is_some_and(|s| repeats_earlier(&phase.spec.totp, &phase.users[user], s)) =>
            {
                Outcome::RepeatedCode
            }
            other => other,
        };
        // A challenge is what round 1 wants only with a State to answer it by: without one,
        // round 1 counted it as expected and round 2 then had nothing to send.
        let round1 = matches!(phase.spec.flow, Flow::Round1 | Flow::TwoRound) && !phase.round2;
        let outcome = match (outcome, round1) {
            (Outcome::Expected, true) => match raw.as_deref().and_then(state_of) {
                Some(state) => {
                    if phase.spec.flow == Flow::TwoRound {
                        states.push((user % n, state));
                    }
                    Outcome::Expected
                }
                None => Outcome::StatelessChallenge,
            },
            (other, _) => other,
        };
        tally.record(outcome, latency);
    }
    (tally, states, conn)
}

fn state_of(raw: &[u8]) -> Option<Vec<u8>> {
    parse_reply(raw)?
        .attributes
        .into_iter()
        .find(|(t, _)| *t == 24)
        .map(|(_, v)| v)
}

/// The code `user` should send now and its step, or `None` when it has no step it may use
/// now (the caller waits and tries again).
fn code_for(p: &TotpParams, user: &LoadUser) -> Option<(String, i64)> {
    let seed = user.seed.as_ref()?;
    let step = step_at(p, user, unix_now())?;
    Some((totp_code(seed, p.algorithm, p.digits, p.period, step), step))
}

/// Whether the code of `step` is also the code of an earlier step this user may have sent
/// that radmfa still compares codes with: its window and the `2·window` steps below it,
/// with a learned drift of up to `window` (so `6·window` back from a step the generator
/// sends; about one code in 25,000 at window 10, 6 digits, for a user who has used most of
/// those steps). A server with a replay guard rightly refuses it: it cannot tell it from a
/// replay. Asked only of a Reject, so the generator spends nothing on it otherwise;
/// checking every code before sending would cost that many HMACs per request on the
/// cores the server shares.
fn repeats_earlier(p: &TotpParams, user: &LoadUser, step: i64) -> bool {
    let Some(seed) = user.seed.as_ref() else {
        return false;
    };
    if !p.replay_guard {
        return false;
    }
    let code = |s: i64| totp_code(seed, p.algorithm, p.digits, p.period, s);
    let sent = code(step);
    let back = 6 * i64::from(p.window);
    (step - back..step).any(|s| s >= 0 && code(s) == sent)
}

/// Without a replay guard, no code is made this close (seconds) to the next step boundary,
/// at most a quarter of the period: far above a request's time on the wire and in the
/// server's queue here, and small, since every worker idles through it (with the 20 ms
/// polls below, ~0.8 % of a run against FreeRADIUS).
const BOUNDARY_MARGIN: f64 = 0.2;

/// The step `user` should send a code of at `now` (Unix seconds).
fn step_at(p: &TotpParams, user: &LoadUser, now: f64) -> Option<i64> {
    let period = f64::from(p.period.max(1));
    let cur = (now / period).floor() as i64;
    if p.replay_guard {
        // Keep one step of margin on each side: a request made just before a step boundary
        // reaches the server just after it.
        let w = p.window.saturating_sub(1) as i64;
        user.claim_step(cur - w, cur + w)
    } else {
        // FreeRADIUS 3.2.1's rlm_totp accepts only the step current when it reads the
        // request: a code made just before a boundary and read after it was refused (the
        // few dozen inline Rejects per FreeRADIUS run). So near a boundary, wait for it.
        let to_next = (cur + 1) as f64 * period - now;
        (to_next > BOUNDARY_MARGIN.min(period / 4.0)).then_some(cur)
    }
}

/// One request, ready to send.
struct Built {
    user: usize,
    packet: Vec<u8>,
    auth: [u8; 16],
    /// The TOTP step of the code it carries, if any.
    step: Option<i64>,
}

/// Builds request number `i`.
fn build(phase: &Phase, i: u64, id: u8) -> Option<Built> {
    let spec = &phase.spec;
    let secret = spec.secret.expose();
    let users = &phase.users;
    let n = users.len();
    let with_nas = |b: AccessRequestBuilder| match &spec.nas_identifier {
        Some(nas) => b.attribute(32, nas.as_bytes()),
        None => b,
    };
    if phase.round2 {
        let (u, state) = &phase.answers[i as usize];
        let (code, step) = code_for(&spec.totp, &users[*u])?;
        let b = AccessRequestBuilder::new(id, &users[*u].name)
            .password(code.as_bytes())
            .state(state);
        let (raw, auth) = with_nas(b).build(secret);
        return Some(Built {
            user: *u,
            packet: raw,
            auth,
            step: Some(step),
        });
    }
    let start = (i % n as u64) as usize;
    match spec.flow {
        Flow::Status => {
            let (raw, auth) = status_server(id, secret);
            Some(Built {
                user: start,
                packet: raw,
                auth,
                step: None,
            })
        }
        Flow::Round1 | Flow::TwoRound | Flow::Reject => {
            let user = &users[start];
            let mut pw = user.password.expose().to_vec();
            if spec.flow == Flow::Reject {
                pw.extend_from_slice(b"-wrong");
            }
            let b = AccessRequestBuilder::new(id, &user.name).password(&pw);
            let (raw, auth) = with_nas(b).build(secret);
            Some(Built {
                user: start,
                packet: raw,
                auth,
                step: None,
            })
        }
        Flow::Inline => {
            // The next user with a step left; with enough users this is the first one tried.
            (0..n).find_map(|k| {
                let u = (start + k) % n;
                let (code, step) = code_for(&spec.totp, &users[u])?;
                let mut field = users[u].password.expose().to_vec();
                field.extend_from_slice(spec.delimiter.as_bytes());
                field.extend_from_slice(code.as_bytes());
                let b = AccessRequestBuilder::new(id, &users[u].name).password(&field);
                let (raw, auth) = with_nas(b).build(secret);
                Some(Built {
                    user: u,
                    packet: raw,
                    auth,
                    step: Some(step),
                })
            })
        }
    }
}

/// Sends and waits, retransmitting the identical datagram on timeout as a NAS does. Replies
/// with another identifier (late answers to an earlier request) are skipped. A verified reply
/// comes back as `Unexpected(code)`; the caller, which knows the flow, turns the code it
/// wanted into `Expected`. Also returns the latency, the reply bytes and the retransmits.
/// `end`, the run's `--duration` end: no retransmit starts after it and no wait goes more
/// than [`END_GRACE`] past it, so the run ends on time; a request still unanswered then is
/// [`Outcome::CutOff`].
pub async fn exchange(
    spec: &LoadSpec,
    sock: &UdpSocket,
    packet: &[u8],
    auth: &[u8; 16],
    end: Option<Instant>,
) -> (Outcome, Duration, Option<Vec<u8>>, u32) {
    let t0 = Instant::now();
    let mut buf = vec![0u8; 4096];
    // A reply with this identifier that fails verification is not given the last word: it
    // may be a late duplicate of an earlier request's reply (the identifier came round
    // again, or the previous phase used it on this socket), and the genuine one may follow.
    let mut forged = None;
    // The socket said ICMP port unreachable: reported as such, not as a timeout, when no
    // reply comes (`client login` says so too).
    let mut refused = false;
    let mut cut = false;
    let mut attempts = 0;
    for attempt in 0..=spec.retries {
        if end.is_some_and(|e| Instant::now() >= e) {
            cut = true;
            break;
        }
        attempts = attempt;
        let mut until = tokio::time::Instant::now() + spec.timeout;
        if let Some(e) = end.map(|e| tokio::time::Instant::from_std(e + END_GRACE)) {
            cut = e < until;
            until = until.min(e);
        }
        // A closed port answers with ICMP port-unreachable, which a connected UDP socket
        // reports at once as an error of the next send or recv. The attempt still waits out
        // its timeout, as it would for silence: otherwise every retry is spent in
        // microseconds and a `-d` run spins at full CPU recording ~0 ms timeouts.
        if sock.send(packet).await.is_err() {
            refused = true;
            tokio::time::sleep_until(until).await;
            continue;
        }
        loop {
            let len = match tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
                Ok(Ok(len)) => len,
                // An ICMP error is reported once, and may be an earlier datagram's (a server
                // restarting): keep listening for this attempt's reply, paced so that an
                // error that repeats cannot spin.
                Ok(Err(_)) => {
                    refused = true;
                    if tokio::time::Instant::now() >= until {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(_) => break,
            };
            let reply = &buf[..len];
            if len < 20 || reply[1] != packet[1] {
                continue;
            }
            let latency = t0.elapsed();
            match check(spec.verify, reply, auth, spec.secret.expose()) {
                Ok(()) => {
                    return (
                        Outcome::Unexpected(reply[0]),
                        latency,
                        Some(reply.to_vec()),
                        attempt,
                    )
                }
                Err(why) => forged = Some((latency, attempt, failed(&why))),
            }
        }
    }
    match forged {
        Some((latency, attempt, outcome)) => (outcome, latency, None, attempt),
        None if refused => (Outcome::Unreachable, t0.elapsed(), None, attempts),
        // Cut off only if it had not yet waited a whole --timeout: one that had (and was
        // retransmitted) is a timeout, end of the run or not.
        None if cut && t0.elapsed() < spec.timeout => {
            (Outcome::CutOff, t0.elapsed(), None, attempts)
        }
        None => (Outcome::Timeout, t0.elapsed(), None, attempts),
    }
}

/// How long after a run's end the replies to requests still in flight are waited for: a
/// server answering in milliseconds has every one counted, a silent one holds the run for
/// no more than this (it held it for timeout × attempts, 9 s by default).
const END_GRACE: Duration = Duration::from_millis(500);

/// [`exchange`] over RadSec. TCP delivers or fails, so there is no retransmit (RFC 6614
/// §2.5): one wait of the whole budget (`timeout` × (1 + `retries`)). A late reply to an
/// earlier request is skipped by its identifier; a timeout or a broken connection drops the
/// connection, and the next request opens a new one.
async fn exchange_tls(
    spec: &LoadSpec,
    link: &mut Option<Box<Link>>,
    packet: &[u8],
    auth: &[u8; 16],
    end: Option<Instant>,
) -> (Outcome, Duration, Option<Vec<u8>>, u32) {
    use tokio::io::AsyncWriteExt;
    let t0 = Instant::now();
    let whole = spec.timeout * (spec.retries + 1);
    // As over UDP, no wait goes past the run's end.
    let left = end.map(|e| (e + END_GRACE).saturating_duration_since(t0));
    let cut = left.is_some_and(|l| l < whole);
    let budget = left.map_or(whole, |l| l.min(whole));
    // As over UDP: cut off only before a whole --timeout was waited.
    let gave_up = || {
        if cut && t0.elapsed() < spec.timeout {
            Outcome::CutOff
        } else {
            Outcome::Timeout
        }
    };
    // As over UDP, a refused or broken connection waits out the budget like silence would,
    // so a closed port does not turn the run into a busy loop of instant failures.
    let wait_out = || tokio::time::sleep_until((t0 + budget).into());
    if link.is_none() {
        *link = open(spec).await.ok().and_then(|c| match c {
            Conn::Tls(l) => l,
            Conn::Udp(_) => None,
        });
    }
    let Some(tls) = link.as_mut() else {
        wait_out().await;
        return (gave_up(), t0.elapsed(), None, 0);
    };
    let got = tokio::time::timeout(budget, async {
        tls.write_all(packet).await?;
        loop {
            let reply = super::radsec::read_packet(tls).await?;
            if reply[1] == packet[1] {
                return anyhow::Ok(reply);
            }
        }
    })
    .await;
    let Ok(Ok(reply)) = got else {
        *link = None;
        wait_out().await;
        return (gave_up(), t0.elapsed(), None, 0);
    };
    let latency = t0.elapsed();
    match check(spec.verify, &reply, auth, spec.secret.expose()) {
        Ok(()) => (Outcome::Unexpected(reply[0]), latency, Some(reply), 0),
        Err(why) => (failed(&why), latency, None, 0),
    }
}

/// How a reply that failed verification is counted: unsigned apart from forged.
fn failed(why: &Failure) -> Outcome {
    match why {
        Failure::Unsigned(_) => Outcome::Unsigned,
        Failure::Bad(_) => Outcome::Forged,
    }
}

#[cfg(test)]
mod tests {
    use super::spread_by_user;

    /// A Reject is put down to a repeated code only when the code sent is also an earlier
    /// step's within reach of the server's window, and only against a server that keeps
    /// used steps.
    #[test]
    fn a_code_repeating_an_earlier_step_is_told_apart() {
        use super::{repeats_earlier, totp_code, LoadUser, OtpAlgorithm, Secret, TotpParams};
        let mut p = TotpParams {
            algorithm: OtpAlgorithm::Sha1,
            digits: 1,
            period: 30,
            window: 2,
            replay_guard: true,
        };
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let code = |s: i64| totp_code(&seed, p.algorithm, 1, 30, s);
        let u = LoadUser::new("u", "p", Some(seed.clone()));
        let repeats = |s: i64| (s - 12..s).any(|e| code(e) == code(s));
        let yes = (100..).find(|&s| repeats(s)).unwrap();
        let no = (100..).find(|&s| !repeats(s)).unwrap();
        assert!(repeats_earlier(&p, &u, yes));
        assert!(!repeats_earlier(&p, &u, no));
        // Not for a server without a replay guard, nor a user without a seed.
        assert!(!repeats_earlier(&p, &LoadUser::new("v", "p", None), yes));
        p.replay_guard = false;
        assert!(!repeats_earlier(&p, &u, yes));
    }

    /// Without a replay guard the current step's code is sent, but not in the last 0.2 s
    /// before a step boundary: it would reach a server checking only the current step
    /// (FreeRADIUS 3.2.1) after the boundary and be refused.
    #[test]
    fn no_code_is_made_just_before_a_step_boundary() {
        use super::{step_at, LoadUser, OtpAlgorithm, TotpParams};
        let p = TotpParams {
            algorithm: OtpAlgorithm::Sha1,
            digits: 6,
            period: 30,
            window: 1,
            replay_guard: false,
        };
        let u = LoadUser::new("u", "p", None);
        let t0 = 30.0 * 1_000.0;
        assert_eq!(step_at(&p, &u, t0), Some(1_000));
        assert_eq!(step_at(&p, &u, t0 + 29.7), Some(1_000));
        assert_eq!(
            step_at(&p, &u, t0 + 29.9),
            None,
            "0.1 s before the boundary"
        );
        assert_eq!(step_at(&p, &u, t0 + 30.0), Some(1_001));
        // A short period keeps most of each step usable.
        let short = TotpParams { period: 2, ..p };
        assert_eq!(step_at(&short, &u, 2.0 * 500.0 + 1.4), Some(500));
    }

    /// With a rate, each request says when it was due (latency counts from there), and
    /// the schedule does not drift: request i is due at start + i / rate.
    #[tokio::test]
    async fn a_paced_schedule_gives_each_request_its_due_time() {
        use std::time::Duration;
        let s = super::Schedule::new(3, None, Some(100.0), Default::default());
        let mut dues = Vec::new();
        while let Some((i, due)) = s.next().await {
            dues.push((i, due.expect("a rate gives due times")));
        }
        assert_eq!(dues.iter().map(|d| d.0).collect::<Vec<_>>(), [0, 1, 2]);
        for (i, due) in dues {
            assert_eq!(due - s.start, Duration::from_millis(10 * i));
        }
        let unpaced = super::Schedule::new(1, None, None, Default::default());
        assert_eq!(unpaced.next().await, Some((0, None)));
    }

    /// Under `--rate` the deadline ends the run on time: numbers due after it are not slept
    /// for (at 1/s, 50 workers would otherwise sleep up to 49 s past a 0.1 s run).
    #[tokio::test]
    async fn a_paced_schedule_stops_at_its_deadline_not_at_the_last_due_time() {
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let s = Arc::new(super::Schedule::new(
            u64::MAX,
            Some(Duration::from_millis(100)),
            Some(1.0),
            Default::default(),
        ));
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let s = s.clone();
            workers.spawn(async move {
                let mut got = Vec::new();
                while let Some((i, _)) = s.next().await {
                    got.push(i);
                }
                got
            });
        }
        let mut sent = Vec::new();
        while let Some(got) = workers.join_next().await {
            sent.extend(got.unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(sent, [0], "only the request due before the deadline");
    }

    #[test]
    fn answers_of_one_user_are_spread_apart() {
        let states = vec![
            (1, vec![10]),
            (1, vec![11]),
            (2, vec![20]),
            (1, vec![12]),
            (2, vec![21]),
        ];
        let order: Vec<u8> = spread_by_user(states)
            .into_iter()
            .map(|(_, s)| s[0])
            .collect();
        // Each user's own answers keep their order; round k of every user precedes round k+1.
        assert_eq!(order, vec![10, 20, 11, 21, 12]);
    }
}
