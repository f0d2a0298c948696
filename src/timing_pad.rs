//! Making a quick refusal take about as long as the slower one it could be told apart from.
//!
//! An unknown user costs the directory a search but no bind; an enrolled user on an inline
//! client who typed no code is refused before the directory is asked at all. Answered at
//! once, either would tell a caller which names exist (or have a token). So such a refusal
//! sleeps for as long as the work it skipped took lately: one of its recent durations,
//! drawn at random, under a cap.
//!
//! Drawn from the durations themselves, not an average with jitter around it: a bind's time
//! is skewed (most are quick, a few slow), so its mean sits above a typical bind, and a red
//! team told padded refusals (slower) from real ones in 25 tries a name. The sleep's own
//! overhead (the hop to a blocking thread and back, the timer's tick) is measured and taken
//! off the next sleep, for the same reason.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;

/// Pads shorter than this sleep on a blocking-pool thread (precise to the microsecond);
/// longer ones on tokio's timer, whose millisecond ticks matter little against them. A 300
/// µs bind imitated by tokio's timer would take 1-2 ms, and make the padded path *slower*.
const PRECISE_BELOW: Duration = Duration::from_millis(5);

/// Precise pads sleeping at once, each on a blocking-pool thread. A flood of refusals must
/// not fill that pool (512 threads, shared with SQLite and the app-password hash); past this
/// many, pads take tokio's timer, which under such load is no worse than the noise around it.
const PRECISE_AT_ONCE: usize = 64;

/// Recent durations kept per kind of work: enough to carry its spread, few enough to follow
/// a directory that slows down within a minute of logins.
const SAMPLES: usize = 64;

/// The most a pad may be, as a multiple of the recent durations' median (see `Pad::draw`).
const OUTLIER: u64 = 4;

tokio::task_local! {
    /// The quantile every pad of one request draws at ([`one_draw`]).
    static QUANTILE: f64;
}

/// Runs `work` (one request's handling) with one random quantile for all its pads. A
/// refusal padded twice (the directory's pad for the bind it skipped, then the pipeline's
/// for the whole request) with two independent draws would take the longer of two, which
/// is slower than one real refusal two times in three; at one quantile the second pad
/// only tops the first up.
pub async fn one_draw<F: std::future::Future>(work: F) -> F::Output {
    QUANTILE.scope(rand::random::<f64>(), work).await
}

fn quantile() -> f64 {
    QUANTILE
        .try_with(|q| *q)
        .unwrap_or_else(|_| rand::random::<f64>())
}

/// A blocking thread's slot for a pad this short, if one of `slots` is free.
fn precise_slot(
    slots: &std::sync::Arc<tokio::sync::Semaphore>,
    pad: Duration,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if pad < PRECISE_BELOW {
        slots.clone().try_acquire_owned().ok()
    } else {
        None
    }
}

fn precise_slots() -> &'static std::sync::Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
        std::sync::OnceLock::new();
    SLOTS.get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(PRECISE_AT_ONCE)))
}

/// How much longer than aimed a sleep of one kind took, in µs: a running median (each
/// sample moves it 1 µs towards itself), the same for every pad, since it is the
/// runtime's and the machine's. Not a mean: now and then a wake-up is late by far (a new
/// blocking thread, a busy core), and a mean would take that off every pad, making the
/// usual padded refusal the quicker one.
struct Overshoot(AtomicU64);

static PRECISE_OVERSHOOT: Overshoot = Overshoot(AtomicU64::new(0));
static TIMER_OVERSHOOT: Overshoot = Overshoot(AtomicU64::new(0));

impl Overshoot {
    fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    fn record(&self, over: Duration) {
        let over = over.as_micros().min(u64::from(u32::MAX) as u128) as u64;
        let old = self.0.load(Ordering::Relaxed);
        let new = match over.cmp(&old) {
            std::cmp::Ordering::Greater => old + 1,
            std::cmp::Ordering::Less => old - 1,
            std::cmp::Ordering::Equal => old,
        };
        self.0.store(new, Ordering::Relaxed);
    }
}

/// Recent durations of one kind of work, and a sleep that imitates it.
#[derive(Debug)]
pub struct Pad {
    /// Microseconds, a ring written at `next % SAMPLES`; 0 = not written yet.
    samples: [AtomicU64; SAMPLES],
    /// Samples recorded so far.
    next: AtomicUsize,
}

impl Default for Pad {
    fn default() -> Self {
        Pad {
            samples: std::array::from_fn(|_| AtomicU64::new(0)),
            next: AtomicUsize::new(0),
        }
    }
}

impl Pad {
    /// One more sample of the work's duration.
    pub fn record(&self, sample: Duration) {
        let sample = (sample.as_micros().min(u64::MAX as u128) as u64).max(1);
        let at = self.next.fetch_add(1, Ordering::Relaxed) % SAMPLES;
        self.samples[at].store(sample, Ordering::Relaxed);
    }

    /// Whether the work has been timed at least once.
    pub fn has_sample(&self) -> bool {
        self.next.load(Ordering::Relaxed) != 0
    }

    /// How many durations the ring holds (at most [`SAMPLES`]).
    fn held(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(SAMPLES)
    }

    /// One of the recent durations (µs; 0 before any): the one at the request's quantile
    /// ([`one_draw`]), or at a random one outside it. At most [`OUTLIER`] times their
    /// median: one refusal slowed by a failover (a connect timeout) would otherwise stay in
    /// the ring until 64 more known users mistyped, and every unknown name drawing it in
    /// the meantime would take seconds, which no known name does.
    fn draw(&self) -> u64 {
        let kept = self.next.load(Ordering::Relaxed).min(SAMPLES);
        // A slot counted but not written yet (a record in progress) reads 0: left out.
        let mut values = [0u64; SAMPLES];
        let mut n = 0;
        for slot in &self.samples[..kept] {
            let us = slot.load(Ordering::Relaxed);
            if us != 0 {
                values[n] = us;
                n += 1;
            }
        }
        if n == 0 {
            return 0;
        }
        let values = &mut values[..n];
        values.sort_unstable();
        let median = values[n / 2];
        let at = ((quantile() * n as f64) as usize).min(n - 1);
        values[at].min(median.saturating_mul(OUTLIER))
    }

    /// Sleeps about as long as the work takes, at most `cap`; not at all before a sample.
    pub async fn sleep(&self, cap: Duration) {
        self.sleep_or(Duration::ZERO, cap).await
    }

    /// [`Pad::sleep`], taking `fallback` for the work's time while there is no sample yet
    /// (after a start or a reload, until the work is first done).
    pub async fn sleep_or(&self, fallback: Duration, cap: Duration) {
        self.sleep_rest_or(fallback, Duration::ZERO, cap).await
    }

    /// What is left of [`Pad::sleep`] after `spent` went on other work already: a floor
    /// under that work's time. Not at all before a sample.
    pub async fn sleep_rest(&self, spent: Duration, cap: Duration) {
        self.sleep_rest_or(Duration::ZERO, spent, cap).await
    }

    async fn sleep_rest_or(&self, fallback: Duration, spent: Duration, cap: Duration) {
        let us = match self.draw() {
            // No duration known: the fallback, ±25 % so that it is not one fixed time.
            0 => {
                let f = fallback.as_micros().min(u64::MAX as u128) as u64;
                if f == 0 {
                    return;
                }
                rand::thread_rng().gen_range(f / 4 * 3..=f.saturating_add(f / 4))
            }
            us => us,
        };
        let pad = Duration::from_micros(us).min(cap).saturating_sub(spent);
        if pad.is_zero() {
            return;
        }
        let started = Instant::now();
        match precise_slot(precise_slots(), pad) {
            Some(slot) => {
                // Counted from `started`, so the hop to the thread is inside the pad; the
                // hop back is what the overshoot takes off.
                let aim = pad.saturating_sub(PRECISE_OVERSHOOT.get());
                let _ = tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    std::thread::sleep(aim.saturating_sub(started.elapsed()))
                })
                .await;
                PRECISE_OVERSHOOT.record(started.elapsed().saturating_sub(aim));
            }
            None => {
                let aim = pad.saturating_sub(TIMER_OVERSHOOT.get());
                tokio::time::sleep_until((started + aim).into()).await;
                TIMER_OVERSHOOT.record(started.elapsed().saturating_sub(aim));
            }
        }
    }
}

/// A [`Pad`] per name (an upstream group), made on first use.
#[derive(Default)]
pub struct PadsByName {
    pads: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Pad>>>,
}

impl PadsByName {
    pub fn get(&self, name: &str) -> std::sync::Arc<Pad> {
        let mut pads = self.pads.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up before the entry is made: every refused login asks, and `entry` would
        // allocate the name each time.
        if let Some(pad) = pads.get(name) {
            return pad.clone();
        }
        pads.entry(name.to_string()).or_default().clone()
    }
}

/// A [`Pad`] per client, and one for all of them, for a client before its own holds [`OWN_AFTER`]
/// durations. Clients' refusals differ in their own work (an inline client reads the store before
/// the directory, one that takes app passwords checks them first): padded from every client's
/// durations, an unknown name on one client took another's time, and a mix of clients told names
/// apart by about what that work costs.
#[derive(Default)]
pub struct PadsByClient {
    all: Pad,
    by_client: PadsByName,
}

impl PadsByClient {
    pub fn record(&self, client: &str, sample: Duration) {
        self.all.record(sample);
        self.by_client.get(client).record(sample);
    }

    /// [`Pad::sleep_rest`] with the client's durations once it has [`OWN_AFTER`], every
    /// client's before: on a quiet client, one refusal slowed by a failover would be most
    /// of a ring too small for [`OUTLIER`]'s cap, and every unknown name there would take
    /// its time until a few more known users mistyped, which could be days.
    pub async fn sleep_rest(&self, client: &str, spent: Duration, cap: Duration) {
        let own = self.by_client.get(client);
        let pad = if own.held() >= OWN_AFTER {
            &*own
        } else {
            &self.all
        };
        pad.sleep_rest(spent, cap).await
    }

    /// Whether `client`'s own ring holds enough durations to draw from ([`OWN_AFTER`]).
    pub fn knows(&self, client: &str) -> bool {
        self.by_client.get(client).held() >= OWN_AFTER
    }
}

/// Durations a client's own ring needs before [`PadsByClient`] draws from it.
const OWN_AFTER: usize = SAMPLES / 4;

#[cfg(test)]
mod client_tests {
    use super::{PadsByClient, OWN_AFTER, QUANTILE};
    use std::time::{Duration, Instant};

    async fn slept(pads: &PadsByClient, client: &str) -> Duration {
        let t = Instant::now();
        let cap = Duration::from_secs(5);
        QUANTILE
            .scope(0.9, pads.sleep_rest(client, Duration::ZERO, cap))
            .await;
        t.elapsed()
    }

    /// A client draws from its own durations once it has enough of them, and from every
    /// client's before: a quiet client's one slow refusal is not its unknown names' time.
    #[tokio::test]
    async fn a_client_pads_from_its_own_durations_once_it_has_enough() {
        let pads = PadsByClient::default();
        for _ in 0..OWN_AFTER {
            pads.record("slow", Duration::from_millis(200));
            pads.record("fast", Duration::from_millis(1));
        }
        pads.record("quiet", Duration::from_millis(1_500));
        let fast = slept(&pads, "fast").await;
        assert!(fast < Duration::from_millis(100), "{fast:?}");
        for client in ["new", "quiet"] {
            let t = slept(&pads, client).await;
            let every = Duration::from_millis(150)..Duration::from_millis(1_000);
            assert!(every.contains(&t), "{client}: {t:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_name_has_its_own_durations() {
        let pads = super::PadsByName::default();
        pads.get("fast").record(std::time::Duration::from_millis(2));
        pads.get("slow")
            .record(std::time::Duration::from_millis(50));
        assert!(std::sync::Arc::ptr_eq(&pads.get("fast"), &pads.get("fast")));
        let drawn = |n: &str| pads.get(n).draw();
        assert_eq!(
            (drawn("fast"), drawn("slow"), drawn("new")),
            (2_000, 50_000, 0)
        );
    }

    /// A pad is one of the recent durations, each as likely: a skewed spread (mostly
    /// quick, now and then slow) is imitated as it is, not as its mean. Older durations
    /// than the last SAMPLES are gone.
    #[test]
    fn a_pad_is_drawn_from_the_recent_durations() {
        let pad = super::Pad::default();
        pad.record(std::time::Duration::from_millis(900));
        for k in 0..super::SAMPLES {
            let us = if k % 8 == 0 { 1_100 } else { 300 };
            pad.record(std::time::Duration::from_micros(us));
        }
        let draws: Vec<u64> = (0..8_000).map(|_| pad.draw()).collect();
        assert!(
            draws.iter().all(|&d| d == 300 || d == 1_100),
            "the 900 ms one is gone"
        );
        let slow = draws.iter().filter(|&&d| d == 1_100).count();
        // 1 in 8 expected: 1,000 of 8,000.
        assert!((800..1_200).contains(&slow), "{slow}");
    }

    /// One refusal slowed by a failover (1.5 s among 1 ms ones) is drawn at no more than 4
    /// times the median, not at full size for the next 64 refusals.
    #[test]
    fn an_outlier_is_drawn_at_most_four_times_the_median() {
        let pad = super::Pad::default();
        pad.record(std::time::Duration::from_millis(1_500));
        for _ in 1..super::SAMPLES {
            pad.record(std::time::Duration::from_millis(1));
        }
        let most = (0..6_400).map(|_| pad.draw()).max().unwrap();
        assert_eq!(most, 4_000);
    }

    /// Two pads of one request draw at one quantile: the second only tops the first up, so
    /// the request takes one draw's time, not the longer of two (slow 3 times in 4 here).
    #[tokio::test]
    async fn pads_of_one_request_draw_at_one_quantile() {
        let (inner, outer) = (super::Pad::default(), super::Pad::default());
        for k in 0..super::SAMPLES as u64 {
            let us = if k % 2 == 0 { 1_000 } else { 15_000 };
            inner.record(std::time::Duration::from_micros(us));
            outer.record(std::time::Duration::from_micros(us + 100));
        }
        let mut slow = 0;
        for _ in 0..2_000 {
            let (a, b) = super::one_draw(async { (inner.draw(), outer.draw()) }).await;
            assert_eq!(a + 100, b, "one quantile");
            slow += usize::from(a.max(b) > 10_000);
        }
        // Half expected: 1,000 of 2,000 (with two draws, 1,500).
        assert!((850..1_150).contains(&slow), "{slow}");
    }

    #[tokio::test]
    async fn the_rest_is_slept_after_work_already_spent() {
        let pad = super::Pad::default();
        pad.record(std::time::Duration::from_millis(200));
        let cap = std::time::Duration::from_secs(1);
        let t = std::time::Instant::now();
        pad.sleep_rest(std::time::Duration::from_millis(140), cap)
            .await;
        let slept = t.elapsed();
        // 200 ms in all, 140 of them spent before: 60 ms left. Not subtracting what
        // was spent would sleep 200, so the two cannot meet.
        assert!(
            slept >= std::time::Duration::from_millis(5)
                && slept < std::time::Duration::from_millis(145),
            "{slept:?}"
        );
        let t = std::time::Instant::now();
        pad.sleep_rest(std::time::Duration::from_millis(400), cap)
            .await;
        assert!(
            t.elapsed() < std::time::Duration::from_millis(20),
            "nothing left"
        );
    }

    #[tokio::test]
    async fn before_a_sample_the_fallback_is_slept() {
        let pad = super::Pad::default();
        let cap = std::time::Duration::from_secs(1);
        let t = std::time::Instant::now();
        pad.sleep_or(std::time::Duration::from_millis(40), cap)
            .await;
        // ±25 % jitter around 40 ms.
        assert!(
            t.elapsed() >= std::time::Duration::from_millis(30),
            "{:?}",
            t.elapsed()
        );
        pad.record(std::time::Duration::from_millis(1));
        let t = std::time::Instant::now();
        pad.sleep_or(std::time::Duration::from_millis(400), cap)
            .await;
        assert!(
            t.elapsed() < std::time::Duration::from_millis(200),
            "the sample wins"
        );
    }

    /// Short pads take a blocking thread only while one of PRECISE_AT_ONCE slots is free;
    /// the rest, and long pads, sleep on tokio's timer.
    #[test]
    fn short_pads_take_at_most_the_precise_slots() {
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(super::PRECISE_AT_ONCE));
        let short = std::time::Duration::from_millis(1);
        let held: Vec<_> = (0..super::PRECISE_AT_ONCE)
            .map(|_| super::precise_slot(&slots, short).expect("a free slot"))
            .collect();
        assert!(super::precise_slot(&slots, short).is_none(), "all taken");
        drop(held);
        assert!(super::precise_slot(&slots, short).is_some(), "given back");
        let long = std::time::Duration::from_millis(20);
        assert!(super::precise_slot(&slots, long).is_none(), "tokio's timer");
    }

    /// Every pad still sleeps about its time when no precise slot is free.
    #[tokio::test]
    async fn with_no_precise_slot_free_a_pad_still_sleeps() {
        let pad = super::Pad::default();
        pad.record(std::time::Duration::from_millis(4));
        let all = super::precise_slots()
            .clone()
            .acquire_many_owned(super::PRECISE_AT_ONCE as u32)
            .await
            .unwrap();
        let t = std::time::Instant::now();
        pad.sleep(std::time::Duration::from_secs(1)).await;
        assert!(t.elapsed() >= std::time::Duration::from_millis(3));
        drop(all);
    }

    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn sleeps_about_as_long_as_the_work_took() {
        // Wide margins: a loaded CI machine can pause a thread for tens of milliseconds.
        let pad = Pad::default();
        let t = Instant::now();
        pad.sleep(Duration::from_secs(1)).await;
        // Tighter than the margins below: a default pad of 100 ms would otherwise pass.
        assert!(
            t.elapsed() < Duration::from_millis(50),
            "no sample, no sleep"
        );
        for _ in 0..4 {
            pad.record(Duration::from_millis(200));
        }
        let t = Instant::now();
        pad.sleep(Duration::from_secs(1)).await;
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        let t = Instant::now();
        pad.sleep(Duration::from_millis(2)).await;
        assert!(t.elapsed() < Duration::from_millis(100), "capped");
    }
}
