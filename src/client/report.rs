//! Counting outcomes and latencies of one load phase, and printing them. Latencies go into a
//! [`Histogram`]: a sample each grew without bound over a long run (a week at 10⁷/s is
//! allowed), for percentiles within 0.4 % of exact and an exact maximum.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::histogram::Histogram;

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The reply the flow expects (Accept, Challenge or Reject), verified.
    Expected,
    /// A verified reply of another code (e.g. Reject where Accept was expected).
    Unexpected(u8),
    /// A verified Reject of a code that is also the code of an earlier step the user sent
    /// within the server's window: the server rightly took it for a replay. The generator's
    /// doing (about one code in 50,000), not the server's failure.
    RepeatedCode,
    /// A reply arrived but failed verification: never counted as an answer.
    Forged,
    /// A reply whose authenticators are right but that lacks the Message-Authenticator the
    /// check requires, or (strict) carries it elsewhere than first: not believed either,
    /// but a server predating the rule (FreeRADIUS 3.2.1), not a forgery.
    Unsigned,
    /// A verified Access-Challenge with no State: the code expected, but nothing a NAS
    /// could answer, so not counted as expected (round 2 had nothing to send).
    StatelessChallenge,
    /// No reply after all retransmissions.
    Timeout,
    /// No reply, and the socket reported ICMP port unreachable: nothing listens there.
    Unreachable,
    /// Still waiting for its reply when the run's `--duration` ended: given up on then, not
    /// retransmitted past the end (the run ends on time). Not a failure of the server: a
    /// run always ends with requests in flight. One that had waited [`STALLED`] or more is
    /// counted as stalled besides (see [`Tally::stalled`]).
    CutOff,
}

/// How long a request cut off at the end must have waited to count as stalled: a server
/// answering in milliseconds leaves none, one that stopped answering leaves every request
/// it held. Shorter than a `--timeout`, which such requests never reached: a server that
/// went quiet in the last 2.5 s of a run (of 3 s, the documented quick benchmark) passed.
pub const STALLED: Duration = Duration::from_secs(1);

/// One worker's tally; merged into a [`PhaseReport`] at the end.
#[derive(Debug, Default)]
pub struct Tally {
    pub sent: u64,
    pub expected: u64,
    pub unexpected: BTreeMap<u8, u64>,
    pub repeated_codes: u64,
    pub forged: u64,
    pub unsigned: u64,
    pub stateless_challenges: u64,
    pub timeouts: u64,
    pub unreachable: u64,
    pub cut_off: u64,
    /// Of `cut_off`, those that had waited [`STALLED`] or more: with no reply in the
    /// phase's last [`STALLED`], the server stopped answering (`PhaseReport::failure`).
    pub stalled: u64,
    /// With stalled requests, how long before the phase's end its last verified reply came
    /// (or its whole length, with none): set by the phase, which knows its end.
    pub quiet_at_end: Option<Duration>,
    pub retransmits: u64,
    /// Requests not sent: the run ended while no user had a TOTP step left to use, or
    /// before round 2 got to every State.
    pub skipped: u64,
    /// Of `skipped`, those `--rate` made due before the end that no worker was free to
    /// send (the server, or `-p` in flight, could not keep up with the rate).
    pub behind_rate: u64,
    /// Microseconds from first send to verified reply, for every reply of the expected
    /// code (a fast Reject of the wrong kind would make the percentiles look better).
    pub latencies_us: Histogram,
    /// Verified replies of any code.
    pub replies: u64,
    /// When the last verified reply came: the phase's rate counts up to it, so a request
    /// lost at the end (waiting out its timeouts) does not stretch the time.
    pub last_reply: Option<Instant>,
    /// When the last request was first sent: the phase lasted at least that long, even if
    /// the server stopped answering well before (else its rate would count only the time
    /// it still answered).
    pub last_sent: Option<Instant>,
    /// When the last request that got no verified reply was given up on (its retransmits
    /// waited out): with a duration, the phase lasted at least until then, up to its end. A
    /// server that went quiet in the last timeout × attempts of a run was otherwise
    /// credited with the time it was silent cut off.
    pub last_gave_up: Option<Instant>,
    /// Requests that had to wait for a new TOTP step: every user had used each step the
    /// server would take (replay guard on). Each such wait idles a worker for up to a
    /// period: the run measured the generator's users, not the server.
    pub step_waits: u64,
    /// Of `skipped`, the requests the run ended on while they waited for a TOTP step.
    pub step_skipped: u64,
    /// When the last wait for a TOTP step ended: the phase lasted at least that long.
    pub last_waited: Option<Instant>,
    /// How many requests the phase had built when the first had to wait for a step.
    pub ran_out_after: Option<u64>,
}

impl Tally {
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        self.sent += 1;
        match outcome {
            Outcome::Expected => self.expected += 1,
            Outcome::Unexpected(code) => *self.unexpected.entry(code).or_default() += 1,
            Outcome::RepeatedCode => self.repeated_codes += 1,
            Outcome::Forged => self.forged += 1,
            Outcome::Unsigned => self.unsigned += 1,
            Outcome::StatelessChallenge => self.stateless_challenges += 1,
            Outcome::Timeout => self.timeouts += 1,
            Outcome::Unreachable => self.unreachable += 1,
            Outcome::CutOff => {
                self.cut_off += 1;
                if latency >= STALLED {
                    self.stalled += 1;
                }
            }
        }
        if outcome == Outcome::Expected {
            self.latencies_us
                .record(latency.as_micros().min(u64::MAX as u128) as u64);
        }
        if matches!(
            outcome,
            Outcome::Expected
                | Outcome::Unexpected(_)
                | Outcome::RepeatedCode
                | Outcome::StatelessChallenge
        ) {
            self.replies += 1;
            self.last_reply = Some(Instant::now());
        } else {
            self.last_gave_up = Some(Instant::now());
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.expected += other.expected;
        for (k, v) in other.unexpected {
            *self.unexpected.entry(k).or_default() += v;
        }
        self.repeated_codes += other.repeated_codes;
        self.forged += other.forged;
        self.unsigned += other.unsigned;
        self.stateless_challenges += other.stateless_challenges;
        self.timeouts += other.timeouts;
        self.unreachable += other.unreachable;
        self.cut_off += other.cut_off;
        self.stalled += other.stalled;
        self.quiet_at_end = self.quiet_at_end.max(other.quiet_at_end);
        self.retransmits += other.retransmits;
        self.skipped += other.skipped;
        self.behind_rate += other.behind_rate;
        self.latencies_us.merge(&other.latencies_us);
        self.replies += other.replies;
        self.last_reply = self.last_reply.max(other.last_reply);
        self.last_sent = self.last_sent.max(other.last_sent);
        self.last_gave_up = self.last_gave_up.max(other.last_gave_up);
        self.step_waits += other.step_waits;
        self.step_skipped += other.step_skipped;
        self.last_waited = self.last_waited.max(other.last_waited);
        self.ran_out_after = match (self.ran_out_after, other.ran_out_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The summary of one phase, printable and serialisable (the bench script reads the JSON).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub phase: String,
    pub sent: u64,
    pub expected: u64,
    /// Reply code → count, for verified replies of the wrong code.
    pub unexpected: BTreeMap<String, u64>,
    /// Rejects of codes that repeat an earlier step's code in the window ([`Outcome::
    /// RepeatedCode`]).
    pub repeated_codes: u64,
    /// Replies that failed verification other than for want of a Message-Authenticator.
    pub forged: u64,
    /// Right replies without the Message-Authenticator (first) that `--verify` requires
    /// ([`Outcome::Unsigned`]): counted apart from `forged` since they call for `--verify
    /// lenient`, not a look for a wrong secret.
    pub unsigned: u64,
    /// Access-Challenges without a State ([`Outcome::StatelessChallenge`]).
    pub stateless_challenges: u64,
    pub timeouts: u64,
    /// No reply, and ICMP port unreachable ([`Outcome::Unreachable`]).
    pub unreachable: u64,
    /// Unanswered when the run ended ([`Outcome::CutOff`]).
    pub cut_off: u64,
    /// Of `cut_off`, those that had waited a second or more ([`Tally::stalled`]).
    pub stalled: u64,
    /// With stalled requests: seconds from the last verified reply to the phase's end.
    pub quiet_at_end_s: Option<f64>,
    /// Of `stalled`, those counted as lost (errors): 99 % of the answers came within a
    /// tenth of their wait.
    pub lost: u64,
    pub retransmits: u64,
    pub skipped: u64,
    /// Of `skipped`, due under `--rate` but never sent ([`Tally::behind_rate`]).
    pub behind_rate: u64,
    /// Verified replies of any code: what the bench divides server CPU by.
    pub replies: u64,
    pub seconds: f64,
    /// Verified replies (of any code) per second.
    pub replies_per_sec: f64,
    /// Expected replies per second.
    pub ok_per_sec: f64,
    /// Requests that waited for a new TOTP step (the users had used every step the server
    /// would take); 0 in a run with enough users.
    pub step_waits: u64,
    /// Of `skipped`, those the run ended on while they waited for a TOTP step.
    pub step_skipped: u64,
    /// Requests built before the first had to wait for a TOTP step.
    pub ran_out_after: Option<u64>,
    /// Latencies of expected replies; None (JSON null) when there was none, where 0.0
    /// would read as a fast server to whatever reads the JSON.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The run was stopped (Ctrl-C) before this phase's end: its counts are of the run so
    /// far, and it fails.
    pub interrupted: bool,
}

/// Said of replies that failed verification (`forged`), as `client login` says it: a
/// wrong shared secret is by far the most common cause, and "forged 20" named none. The
/// count does not keep which check failed; `client login` says it.
const WRONG_SECRET: &str = "a wrong shared secret looks like this";
const LOGIN_SAYS: &str = "`client login` names the check that failed";

/// What an interrupted phase's report says.
const INTERRUPTED: &str =
    "INTERRUPTED (Ctrl-C) before the end of the run: the counts are of the run so far";

pub fn code_name(code: u8) -> String {
    match code {
        2 => "Access-Accept".into(),
        3 => "Access-Reject".into(),
        11 => "Access-Challenge".into(),
        c => format!("code-{c}"),
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl PhaseReport {
    pub fn new(phase: &str, t: Tally, elapsed: Duration) -> Self {
        let any = t.expected > 0;
        let latency = |us: u64| any.then(|| ms(us));
        let secs = elapsed.as_secs_f64().max(1e-9);
        let replies = t.replies as f64;
        PhaseReport {
            phase: phase.to_string(),
            sent: t.sent,
            expected: t.expected,
            unexpected: t
                .unexpected
                .iter()
                .map(|(k, v)| (code_name(*k), *v))
                .collect(),
            repeated_codes: t.repeated_codes,
            forged: t.forged,
            unsigned: t.unsigned,
            stateless_challenges: t.stateless_challenges,
            timeouts: t.timeouts,
            unreachable: t.unreachable,
            cut_off: t.cut_off,
            stalled: t.stalled,
            quiet_at_end_s: t.quiet_at_end.map(|d| d.as_secs_f64()),
            retransmits: t.retransmits,
            skipped: t.skipped,
            behind_rate: t.behind_rate,
            replies: t.replies,
            seconds: secs,
            replies_per_sec: replies / secs,
            ok_per_sec: t.expected as f64 / secs,
            step_waits: t.step_waits,
            step_skipped: t.step_skipped,
            ran_out_after: t.ran_out_after,
            p50_ms: latency(t.latencies_us.percentile(50.0)),
            p90_ms: latency(t.latencies_us.percentile(90.0)),
            p99_ms: latency(t.latencies_us.percentile(99.0)),
            max_ms: latency(t.latencies_us.max()),
            interrupted: false,
            lost: 0,
        }
        .with_lost()
    }

    fn with_lost(mut self) -> Self {
        self.lost = self.lost_at_end();
        self
    }

    /// "p50 … p90 … p99 … max …" in ms, or None with no expected reply.
    pub fn latencies(&self) -> Option<String> {
        Some(format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            self.p50_ms?, self.p90_ms?, self.p99_ms?, self.max_ms?
        ))
    }

    /// Human-readable block.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} sent in {:.2} s: {:.0} replies/s ({:.0} expected/s)",
            self.phase, self.sent, self.seconds, self.replies_per_sec, self.ok_per_sec
        );
        if self.interrupted {
            let _ = writeln!(s, "  {INTERRUPTED}");
        }
        // Latencies are of expected replies: with none, zeros would read as a fast server.
        match self.latencies() {
            None => {
                let _ = writeln!(s, "  latency ms: - (no expected reply)");
            }
            Some(l) => {
                let _ = writeln!(s, "  latency ms: {l}");
            }
        }
        let _ = write!(
            s,
            "  expected {}  timeouts {}  failed verification {}",
            self.expected, self.timeouts, self.forged
        );
        if self.forged > 0 {
            let _ = write!(s, " ({WRONG_SECRET}; {LOGIN_SAYS})");
        }
        let _ = write!(s, "  retransmits {}", self.retransmits);
        for (code, n) in &self.unexpected {
            let _ = write!(s, "  {code} {n}");
        }
        if self.unreachable > 0 {
            let _ = write!(
                s,
                "  unreachable (ICMP port unreachable: nothing listening?) {}",
                self.unreachable
            );
        }
        if self.cut_off > 0 {
            let _ = write!(s, "  unanswered when the run ended {}", self.cut_off);
            if self.stalled > 0 {
                let _ = write!(s, " ({} of them for over a second)", self.stalled);
            }
        }
        if self.stateless_challenges > 0 {
            let _ = write!(
                s,
                "  Access-Challenge without State {}",
                self.stateless_challenges
            );
        }
        if self.unsigned > 0 {
            let _ = write!(
                s,
                "  unsigned (no Message-Authenticator where --verify requires one, or, \
                 under --verify strict, not first; {}) {}",
                super::verify::LENIENT_HINT,
                self.unsigned
            );
        }
        if self.repeated_codes > 0 {
            let _ = write!(
                s,
                "  repeated codes (rightly refused as replays) {}",
                self.repeated_codes
            );
        }
        let late = self.skipped - self.step_skipped - self.behind_rate;
        if self.behind_rate > 0 {
            let _ = write!(
                s,
                "  behind the rate (due, never sent) {}",
                self.behind_rate
            );
        }
        if late > 0 {
            let _ = write!(s, "  skipped (not sent before the end) {late}");
        }
        if self.step_skipped > 0 {
            let _ = write!(
                s,
                "  skipped (no unused TOTP step before the end) {}",
                self.step_skipped
            );
        }
        if self.step_waits > 0 {
            let _ = write!(
                s,
                "\n  WARNING: users ran out of unused TOTP steps after {} logins: {} requests \
                 waited for a new step, and the time above includes the wait; use more users \
                 or --totp-window",
                self.ran_out_after.unwrap_or(0),
                self.step_waits
            );
        }
        s
    }

    /// Requests cut off at the end after a second or more where 99 % of the answers came
    /// within a tenth of a second: lost, not waiting on a slow server.
    fn lost_at_end(&self) -> u64 {
        let fast = self
            .p99_ms
            .is_some_and(|p99| p99 * 10.0 <= STALLED.as_secs_f64() * 1000.0);
        if fast {
            self.stalled
        } else {
            0
        }
    }

    /// Why this phase counts as failed, if it does: a reply that failed verification, no
    /// expected reply at all, or more than `max_errors` of the requests timed out, got
    /// another answer, or were never sent for want of a TOTP step (a run that was mostly
    /// failures must not read as success to a script).
    pub fn failure(&self, max_errors: f64) -> Option<String> {
        // Whatever the counts say, the run did not do what it was asked to: a script must
        // not take a partial run for a measurement.
        if self.interrupted {
            return Some(format!("{}: failed: {INTERRUPTED}", self.phase));
        }
        // Round 2 of challenges that carried no State: "0 of 0 requests" said nothing.
        if self.phase == "round2" && self.sent == 0 && self.skipped == 0 {
            return Some(
                "round2: failed: nothing to answer: no round-1 challenge carried a State".into(),
            );
        }
        // Every request that did not get the reply it should have, replies that failed
        // verification included ("0 of 20 went wrong" beside 20 forged replies read as a
        // pass), and under --rate the requests due that were never sent (a run asked for
        // 100/s that managed 38 did not show the server takes 100/s).
        // A server that stopped answering before the end: however few the requests it
        // held (a closed loop sends only -p more), the run did not measure it serving.
        if let Some(quiet) = self.quiet_at_end_s.filter(|q| *q >= STALLED.as_secs_f64()) {
            return Some(format!(
                "{}: failed: no reply in the last {quiet:.1} s of the run, with {} request(s) \
                 waiting a second or more when it ended: the server stopped answering, or \
                 could not keep up",
                self.phase, self.stalled
            ));
        }
        // Stalled requests are not errors by themselves: a server slow past a second under
        // load (FreeRADIUS with 100,000 prompts open) still answers, and is measured. Where
        // 99 % of the answers came within a tenth of that, they were lost, not slow: a
        // server dropping one request in five passed a 3 s run with exit 0.
        let lost = self.lost;
        let errors = self.timeouts
            + lost
            + self.unreachable
            + self.forged
            + self.unsigned
            + self.unexpected.values().sum::<u64>()
            + self.step_skipped
            + self.behind_rate
            + self.stateless_challenges;
        let tried = self.sent + self.step_skipped + self.behind_rate;
        let ratio = errors as f64 / tried.max(1) as f64;
        if self.forged == 0
            && self.unsigned == 0
            && self.sent > 0
            && self.expected > 0
            && ratio <= max_errors
        {
            return None;
        }
        // Only what happened is named: the same check serves LDAP binds, which have no
        // forged replies or TOTP steps.
        let mut what = Vec::new();
        if self.forged > 0 {
            what.push(format!(
                "{} failed verification ({WRONG_SECRET})",
                self.forged
            ));
        }
        if self.unsigned > 0 {
            what.push(format!(
                "{} unsigned: {}",
                self.unsigned,
                super::verify::LENIENT_HINT
            ));
        }
        if self.timeouts > 0 {
            what.push(format!("{} timed out", self.timeouts));
        }
        if self.unreachable > 0 {
            what.push(format!(
                "{} unreachable (ICMP port unreachable: nothing listening there?)",
                self.unreachable
            ));
        }
        if self.behind_rate > 0 {
            // Workers waiting for an unused TOTP step take no new requests: then that, not
            // the server, is why.
            let why = if self.step_waits > 0 {
                "workers were waiting for unused TOTP steps: use more users or --totp-window"
            } else {
                "the server, or -p requests in flight, could not keep up"
            };
            what.push(format!(
                "{} due under --rate but never sent ({why})",
                self.behind_rate
            ));
        }
        for (code, n) in &self.unexpected {
            what.push(format!("{code} {n}"));
        }
        if self.stateless_challenges > 0 {
            what.push(format!(
                "{} Access-Challenge without State",
                self.stateless_challenges
            ));
        }
        if self.step_skipped > 0 {
            what.push(format!(
                "{} never sent for want of a TOTP step",
                self.step_skipped
            ));
        }
        if lost > 0 {
            what.push(format!(
                "{lost} unanswered for a second or more when the run ended, while 99 % of the \
                 answers came within {:.1} ms (lost)",
                self.p99_ms.unwrap_or_default()
            ));
        }
        if self.cut_off > lost {
            what.push(format!(
                "{} unanswered when the run ended (not counted as errors)",
                self.cut_off - lost
            ));
        }
        if self.expected == 0 {
            what.push("none as expected".into());
        }
        let mut why = format!(
            "{}: failed: {errors} of {tried} requests went wrong ({}; --max-error-ratio \
             {max_errors})",
            self.phase,
            what.join(", ")
        );
        if self.step_skipped > 0 {
            why.push_str(&format!(
                "; users ran out of unused TOTP steps after {} logins: use more users or \
                 --totp-window",
                self.ran_out_after.unwrap_or(0)
            ));
        }
        Some(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates() {
        let mut t = Tally::default();
        for ms in 1..=100u64 {
            t.record(Outcome::Expected, Duration::from_millis(ms));
        }
        t.record(Outcome::Timeout, Duration::from_secs(9));
        t.record(Outcome::Unexpected(3), Duration::from_millis(200));
        let mut other = Tally::default();
        other.record(Outcome::Forged, Duration::ZERO);
        other.record(Outcome::RepeatedCode, Duration::from_millis(1));
        t.merge(other);
        let r = PhaseReport::new("x", t, Duration::from_secs(2));
        assert_eq!((r.sent, r.expected, r.timeouts, r.forged), (104, 100, 1, 1));
        // A repeated code is a verified reply, neither expected nor unexpected.
        assert_eq!((r.repeated_codes, r.replies), (1, 102));
        assert!(r
            .text()
            .contains("repeated codes (rightly refused as replays) 1"));
        assert_eq!(r.unexpected["Access-Reject"], 1);
        // The Reject (200 ms, the wrong code) is not among the latencies: the maximum is
        // exact, percentiles within the histogram's 0.4 %.
        assert_eq!(r.max_ms, Some(100.0));
        for (got, want) in [(r.p50_ms, 50.0), (r.p90_ms, 90.0), (r.p99_ms, 99.0)] {
            let got = got.unwrap();
            assert!((got - want).abs() <= want / 256.0, "{got} vs {want}");
        }
        assert_eq!((r.replies_per_sec, r.ok_per_sec), (51.0, 50.0));
        assert!(r.text().contains("Access-Reject 1"));
    }

    /// Requests cut off after a second or more fail a phase where the server had gone
    /// quiet, or answered everything else fast (they were lost): a slow server still
    /// answering to the end (FreeRADIUS with 100,000 prompts open, answers taking over a
    /// second) is measured, not failed.
    #[test]
    fn stalled_requests_fail_a_phase_only_when_the_server_went_quiet() {
        let phase = |quiet: Duration| {
            let mut t = Tally::default();
            for _ in 0..100 {
                t.record(Outcome::Expected, Duration::from_millis(1500));
            }
            for _ in 0..40 {
                t.record(Outcome::CutOff, Duration::from_millis(1200));
            }
            t.quiet_at_end = Some(quiet);
            PhaseReport::new("round1", t, Duration::from_secs(3))
        };
        let slow = phase(Duration::from_millis(20));
        assert_eq!((slow.cut_off, slow.stalled), (40, 40));
        assert_eq!(slow.failure(0.01), None, "{}", slow.text());
        // A fast server that dropped them: lost, and counted.
        let mut t = Tally::default();
        for _ in 0..200 {
            t.record(Outcome::Expected, Duration::from_millis(2));
        }
        for _ in 0..40 {
            t.record(Outcome::CutOff, Duration::from_millis(1200));
        }
        t.quiet_at_end = Some(Duration::from_millis(5));
        let lossy = PhaseReport::new("status", t, Duration::from_secs(3));
        let why = lossy
            .failure(0.01)
            .expect("a server dropping requests fails");
        assert!(why.contains("40 unanswered for a second or more"), "{why}");
        let quiet = phase(Duration::from_millis(1800));
        let why = quiet.failure(0.01).expect("a server gone quiet fails");
        assert!(why.contains("no reply in the last 1.8 s"), "{why}");
    }

    /// A long run's latencies take a fixed few kilobytes, not a sample each.
    #[test]
    fn latencies_take_bounded_memory() {
        let mut t = Tally::default();
        for i in 0..1_000_000u64 {
            t.record(Outcome::Expected, Duration::from_micros(100 + i % 50_000));
        }
        assert!(
            t.latencies_us.buckets() < 2_000,
            "{}",
            t.latencies_us.buckets()
        );
    }
}
